"""Source systems that stop, restart, misbehave or get hammered: worlds of our own.

Fake upstreams are real loopback servers; the gateway is the real app (under gunicorn, or
through Flask's test client when a test must point one source at a fake).
"""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from legacy_flask import create_app
from tests.support import HEADERS, World, make_world
from tests.support.contract import assert_conforms, load_spec

BAD_GATEWAY = {
    "http_status_code": 502,
    "message": "A source system is unavailable.",
    "errors": [],
}
BOOKING = {
    "customer_id": 2,
    "departure_id": 3,
    "travellers": 1,
    "currency": "AUD",
    "total_amount": 99,
}


@pytest.fixture
def own_world(tmp_path) -> Iterator[World]:
    with make_world(tmp_path) as world:
        world.start_legacy()
        yield world


def test_write_survives_source_restart(own_world):
    legacy = own_world.url("legacy")
    created = requests.post(f"{legacy}/bookings", json=BOOKING, headers=HEADERS, timeout=10)
    assert created.status_code == 201
    own_world.stack.restart("reservations")
    again = requests.get(f"{legacy}/bookings/{created.json()['id']}", headers=HEADERS, timeout=10)
    assert again.status_code == 200
    assert again.json() == created.json()


def test_stopped_source_gives_502_envelope(own_world):
    legacy = own_world.url("legacy")
    assert requests.get(f"{legacy}/bookings/1", headers=HEADERS, timeout=10).status_code == 200
    own_world.stack.stop("crm")
    for path in ("/bookings/1", "/bookings?page=2", "/customers/3"):
        response = requests.get(legacy + path, headers=HEADERS, timeout=10)
        assert response.status_code == 502
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == BAD_GATEWAY
        assert own_world.url("crm").split("//")[1] not in response.text
        assert_conforms(load_spec(), "GET", path, 502, response.json())
    tours = requests.get(f"{legacy}/tours/1", headers=HEADERS, timeout=10)
    assert tours.status_code == 200
    own_world.stack.stop("reservations")
    response = requests.post(f"{legacy}/bookings", json=BOOKING, headers=HEADERS, timeout=10)
    assert (response.status_code, response.json()) == (502, BAD_GATEWAY)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers from `self.server.answer(path)`, recording every request line's path."""

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        status, content_type, body = self.server.answer(self.path)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def fake_source(answer) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.paths = []  # type: ignore[attr-defined]
    server.answer = answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def app_with(**config: object):
    app = create_app(config)
    try:
        yield app.test_client()
    finally:
        app.extensions["legacy_flask.sources"].close()


def forwarding_to(base: str):
    def answer(path: str) -> tuple[int, str, bytes]:
        with urllib.request.urlopen(base + path, timeout=5) as upstream:
            return upstream.status, "application/json", upstream.read()

    return answer


def test_a_list_page_merges_with_one_ids_request(world):
    with fake_source(forwarding_to(world.url("crm"))) as crm:
        crm_url = f"http://127.0.0.1:{crm.server_port}"
        with app_with(RESERVATIONS_URL=world.url("reservations"), CRM_URL=crm_url) as client:
            body = client.get("/bookings?page=2&max_per_page=50", headers=HEADERS).get_json()
    ids = list(range(51, 101))
    assert [item["id"] for item in body["results"]] == ids
    assert crm.paths == [f"/bookings?ids={'%2C'.join(map(str, ids))}&limit=50"]
    with_crm = [item for item in body["results"] if "agent_notes" in item]
    assert len(with_crm) == 45


@pytest.mark.parametrize(
    "answer",
    [
        (500, "application/json", b'{"error": "internal error"}'),
        (200, "text/html", b"<html>not json</html>"),
        (200, "application/json", b'["not", "a", "record"]'),
        (200, "application/json", b'{"count": "x", "items": []}'),
        (503, "text/plain", b"busy"),
        (200, "application/json", b'{"count": 1, "items": [1]}'),
    ],
)
def test_garbage_from_a_source_gives_502(world, answer):
    with fake_source(lambda path: answer) as crm:
        crm_url = f"http://127.0.0.1:{crm.server_port}"
        with app_with(RESERVATIONS_URL=world.url("reservations"), CRM_URL=crm_url) as client:
            for path in ("/bookings/1", "/bookings"):
                response = client.get(path, headers=HEADERS)
                assert response.status_code == 502
                assert response.get_json() == BAD_GATEWAY
    assert len(crm.paths) == 2


def test_silent_source_times_out_into_502(world):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with app_with(OPERATIONS_URL=url, SOURCE_TIMEOUT=0.3) as client:
            response = client.get("/tours/1", headers=HEADERS)
    assert (response.status_code, response.get_json()) == (502, BAD_GATEWAY)


def test_unexpected_exception_gives_500_envelope(world):
    def broken(path: str) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"id": 1, "variation_ids": 7}'

    with fake_source(broken) as operations:
        url = f"http://127.0.0.1:{operations.server_port}"
        with app_with(OPERATIONS_URL=url) as client:
            response = client.get("/itineraries/1", headers=HEADERS)
    assert response.status_code == 500
    assert response.get_json() == {
        "http_status_code": 500,
        "message": "Internal server error.",
        "errors": [],
    }
