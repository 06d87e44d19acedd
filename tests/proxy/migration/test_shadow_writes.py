"""proxy.migration.shadow, writes: POST, PUT, PATCH and DELETE copied as signed dry runs with
their bodies (`shadow: {writes: dry-run}`), through the real listener and forwarder, loopback
fakes for both backends; byte-level checks of what each backend got."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy import dryrun
from tests.support.raw_http import RawRequest, exchange
from tests.support.shadow_rig import Rig, Start, json_backend, rigs, routes

SECRET = "test-shadow-secret"
WRITES = "writes: dry-run"


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    async with rigs() as start:
        yield start


def header(request: RawRequest, name: bytes) -> bytes | None:
    found = [value for key, value in request.headers if key.lower() == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def verified(request: RawRequest) -> str | None:
    """Why the dry-run headers of `request` do not verify under SECRET (None: they do)."""
    method, target, _ = request.request_line.decode().split(" ")
    return dryrun.verify(
        SECRET,
        (header(request, b"x-strangler-shadow") or b"").decode() or None,
        (header(request, b"x-strangler-signature") or b"").decode() or None,
        method,
        target,
        request.body,
        time.time(),
    )


def created(request: RawRequest) -> tuple[bytes, bytes]:
    """201 with a generated id when the request line asks a POST, 200 otherwise."""
    if request.request_line.startswith(b"POST "):
        return b"201 Created", json.dumps({"id": 7, "href": "http://api/things/7"}).encode()
    return b"200 OK", b'{"ok": true}'


async def test_every_write_method_is_copied_as_a_signed_dry_run_with_its_body(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(created))
    shadow = await upstream_factory(json_backend(created))
    rig = await rig_factory(routes(live.url, shadow.url, more=WRITES), secret=SECRET)
    sent = [
        ("POST", "/things", b'{"name": "a"}'),
        ("PUT", "/things/1?x=1", b'{"name": "b"}'),
        ("PATCH", "/things/1", b'{"name": "\xc3\xa9"}'),
        ("DELETE", "/things/1", b""),
    ]
    for method, path, body in sent:
        response = await rig.get(path, method, body)
        assert response.status == (201 if method == "POST" else 200)
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch"), rig.count("error")) == (4, 0, 0)
    assert [(r.request_line, r.body) for r in shadow.requests] == [
        (f"{method} {path} HTTP/1.1".encode(), body) for method, path, body in sent
    ]
    for copy, original in zip(shadow.requests, live.requests, strict=True):
        assert verified(copy) is None
        assert header(original, b"x-strangler-shadow") is None  # the live write is plain
        # the copy is the live request's head plus the two dry-run headers, last
        assert copy.headers[:-2] == original.headers
        assert copy.headers[-2] == (b"X-Strangler-Shadow", b"dry-run")
        assert copy.headers[-1][0] == b"X-Strangler-Signature"


async def test_a_chunked_write_is_copied_with_the_same_body_bytes(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(created))
    shadow = await upstream_factory(json_backend(created))
    rig = await rig_factory(routes(live.url, shadow.url, more=WRITES), secret=SECRET)
    request = (
        b"POST /things HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    )
    assert (await exchange(rig.port, request)).status == 201
    await rig.settled()
    (copy,) = shadow.requests
    assert copy.body == live.requests[0].body == b'{"a": 1}'
    assert header(copy, b"transfer-encoding") == b"chunked"
    assert verified(copy) is None
    assert rig.count("match") == 1


async def test_client_sent_dry_run_headers_never_reach_a_backend(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(created))
    shadow = await upstream_factory(json_backend(created))
    rig = await rig_factory(routes(live.url, shadow.url, more=WRITES), secret=SECRET)
    forged = dryrun.sign(SECRET, "POST", "/things", b"{}", time.time() - 3600)
    request = (
        b"POST /things HTTP/1.1\r\nHost: api.example\r\nContent-Length: 2\r\n"
        b"X-Strangler-Shadow: dry-run\r\nx-strangler-signature: %b\r\n"
        b"X-STRANGLER-SHADOW: yes\r\n\r\n{}" % forged[dryrun.SIGNATURE_HEADER].encode()
    )
    assert (await exchange(rig.port, request)).status == 201
    await rig.settled()
    (original,) = live.requests
    (copy,) = shadow.requests
    assert [name.lower() for name, _ in original.headers if b"strangler" in name.lower()] == []
    assert [name.lower() for name, _ in copy.headers if b"strangler" in name.lower()] == [
        b"x-strangler-shadow",
        b"x-strangler-signature",
    ]
    assert header(copy, b"x-strangler-signature") != forged[dryrun.SIGNATURE_HEADER].encode()
    assert verified(copy) is None


async def test_without_a_secret_no_write_is_copied(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(created))
    shadow = await upstream_factory(json_backend(created))
    rig = await rig_factory(routes(live.url, shadow.url, more=WRITES))
    assert (await rig.get("/things", "POST", b"{}")).status == 201
    assert (await rig.get("/things/1")).status == 200  # reads are still shadowed
    await rig.settled()
    assert [r.request_line for r in shadow.requests] == [b"GET /things/1 HTTP/1.1"]
    assert len(live.requests) == 2


async def test_writes_are_not_copied_unless_asked(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(created))
    shadow = await upstream_factory(json_backend(created))
    rig = await rig_factory(routes(live.url, shadow.url, more="writes: off"), secret=SECRET)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        await rig.get("/things/1", method, b"{}")
    await rig.settled()
    assert shadow.requests == []


async def test_a_write_body_over_the_cap_is_not_copied_and_is_counted(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(created))
    shadow = await upstream_factory(json_backend(created))
    rig = await rig_factory(routes(live.url, shadow.url, more=WRITES), secret=SECRET, body_cap=1000)
    big = json.dumps({"text": "x" * 2000}).encode()
    response = await rig.get("/things", "POST", big)
    assert response.status == 201
    assert live.requests[0].body == big  # the live write is whole
    await rig.settled()
    assert shadow.requests == []
    dropped = rig.state.registry.get_sample_value(
        "strangler_shadow_dropped_total", {"resource": "things"}
    )
    assert dropped == 1


async def test_generated_fields_of_a_dry_run_are_compared_by_presence_and_type(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    def live_answer(request: RawRequest) -> tuple[bytes, bytes]:
        body = {"id": 7, "href": "http://api/things/7", "date_created": "2026-11-28", "n": "a"}
        return b"201 Created", json.dumps(body).encode()

    def shadow_answer(request: RawRequest) -> tuple[bytes, bytes]:
        if request.request_line.startswith(b"POST /things/resource "):
            return b"404 Not Found", b'{"http_status_code": 404, "message": "Not found."}'
        if request.request_line.startswith(b"POST /things/typed "):
            return b"201 Created", b'{"id": "8", "href": "http://api/things/8", "n": "a"}'
        body = {"id": 8, "href": "http://api/things/8", "date_created": "2026-11-29", "n": "a"}
        return b"201 Created", json.dumps(body).encode()

    live = await upstream_factory(json_backend(live_answer))
    shadow = await upstream_factory(json_backend(shadow_answer))
    rig = await rig_factory(routes(live.url, shadow.url, more=WRITES), secret=SECRET)
    for path in ("/things", "/things/resource", "/things/typed"):
        assert (await rig.get(path, "POST", b'{"n": "a"}')).status == 201
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch")) == (1, 2)
    kept = {m.target: m for m in rig.shadows.recent("things", 10)}
    assert kept["/things/resource"].kind == "status"
    assert (kept["/things/resource"].live_status, kept["/things/resource"].shadow_status) == (
        201,
        404,
    )
    assert kept["/things/resource"].dry_run is True
    assert kept["/things/resource"].body == b'{"n": "a"}'
    assert kept["/things/typed"].kind == "schema"
    assert [(d.where, d.class_) for d in kept["/things/typed"].differences] == [
        ("$.id", "schema"),
        ("$.date_created", "schema"),
    ]
