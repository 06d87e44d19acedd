from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from drf_app.backends import Backend, Crm, Listing, SourceSystems, SourceUnavailable
from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, verify
from tests.drf_app.fake_source import FakeSource, serve
from tests.support import free_port


@pytest.fixture
def source() -> Iterator[FakeSource]:
    records = {"bookings": {pk: {"id": pk, "n": pk * 10} for pk in range(1, 6)}}
    with serve(FakeSource(records)) as started:
        yield started


def test_reads_a_record_and_none_for_a_missing_one(source: FakeSource) -> None:
    backend = Backend(source.url, 2)
    assert backend.get_object("bookings", 2) == {"id": 2, "n": 20}
    assert backend.get_object("bookings", 99) is None


def test_lists_a_page_with_filters_and_ids(source: FakeSource) -> None:
    backend = Backend(source.url, 2)
    assert backend.list_objects("bookings", offset=1, limit=2) == Listing(
        5, [{"id": 2, "n": 20}, {"id": 3, "n": 30}]
    )
    assert backend.list_objects("bookings", ids=[1, 4], limit=2).items == [
        {"id": 1, "n": 10},
        {"id": 4, "n": 40},
    ]
    assert source.seen[-1] == ("GET", "/bookings", {"offset": "0", "limit": "2", "ids": "1,4"})


def test_writes_create_and_merge(source: FakeSource) -> None:
    backend = Backend(source.url, 2)
    assert backend.create_object("bookings", {"n": 1}) == {"n": 1, "id": 6}
    assert backend.merge_object("bookings", 6, {"m": 2}) == {"n": 1, "id": 6, "m": 2}
    assert backend.merge_object("bookings", 6, {"n": 3}) == {"n": 3, "id": 6, "m": 2}
    assert source.seen[-1][:2] == ("PATCH", "/bookings/6")
    assert backend.merge_object("bookings", 60, {"k": 3}) is None


@pytest.mark.parametrize(
    "garbage",
    [(200, b"<html>oops</html>"), (500, b'{"error": "boom"}'), (200, b"[1, 2]"), (409, b"{}")],
)
def test_garbage_answers_are_unavailability(source: FakeSource, garbage: tuple[int, bytes]) -> None:
    source.garbage = garbage
    backend = Backend(source.url, 2)
    with pytest.raises(SourceUnavailable):
        backend.get_object("bookings", 1)
    with pytest.raises(SourceUnavailable):
        backend.list_objects("bookings")


def test_a_refused_connection_is_unavailability() -> None:
    with pytest.raises(SourceUnavailable):
        Backend(f"http://127.0.0.1:{free_port()}", 2).get_object("bookings", 1)


def test_a_silent_source_times_out_as_unavailability() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        backend = Backend(f"http://127.0.0.1:{listener.getsockname()[1]}", 0.2)
        with pytest.raises(SourceUnavailable):
            backend.get_object("bookings", 1)


class Settings:
    RESERVATIONS_URL = "http://127.0.0.1:1"
    CRM_URL = "http://127.0.0.1:2/"
    OPERATIONS_URL = "http://127.0.0.1:3"
    SOURCE_TIMEOUT = "1.5"
    SHADOW_SECRET = "s3cret"


def test_each_backend_reads_its_base_url_from_its_setting() -> None:
    systems = SourceSystems.from_settings(Settings)
    assert sorted(systems) == ["CRM", "OPERATIONS", "RESERVATIONS"]
    assert isinstance(systems["CRM"], Crm)
    assert (systems["CRM"].base_url, systems["CRM"].timeout) == ("http://127.0.0.1:2", 1.5)
    assert systems["RESERVATIONS"].session is not systems["CRM"].session


def test_a_dry_runs_backends_share_the_sessions_and_sign_each_call() -> None:
    systems = SourceSystems.from_settings(Settings)
    dry = systems.dry_run()
    assert dry["CRM"].session is systems["CRM"].session
    assert systems["CRM"].headers("GET", "/bookings/1", None) == {}
    headers = dry["CRM"].headers("PATCH", "/bookings/1?x=1", b'{"a": 1}')
    assert headers["Content-Type"] == "application/json"
    assert (
        verify(
            "s3cret",
            headers[SHADOW_HEADER],
            headers[SIGNATURE_HEADER],
            "PATCH",
            "/bookings/1?x=1",
            b'{"a": 1}',
            time.time(),
        )
        is None
    )
