"""proxy.migration.fallback: replay on the fallback backend, body caps, metrics, the debt it
records (GET /-/debt), with raw loopback upstreams that record the exact bytes they received."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from proxy.control.admin import make_admin_app
from proxy.settings import Settings
from tests.support.raw_http import RawRequest, Upstream, canned, read_body, read_head, respond
from tests.support.routed import log_lines, routed_proxy, routes_yaml, sample

FALLBACK_ANSWER = respond(b"201 Created", b'{"id": 9}', (b"Content-Type: application/json",))
FALLBACKS = "strangler_fallbacks_total"


def not_found(request: RawRequest) -> bytes:
    return respond(b"404 NOT FOUND", b'{"http_status_code": 404}')


def by_path(request: RawRequest) -> bytes:
    """404 under /bookings/resource, 500 under /fail, else 200."""
    target = request.request_line.split(b" ")[1]
    if target.startswith(b"/bookings/resource"):
        return respond(b"404 NOT FOUND", b"drf does not know this shape")
    if target.startswith(b"/fail"):
        return respond(b"500 INTERNAL SERVER ERROR", b"boom")
    return respond(b"200 OK", b"drf")


def routes(drf: Upstream, legacy: Upstream, on: str = "[404, 405, 501]") -> str:
    resources = (
        "  bookings:\n"
        "    backend: drf\n"
        f"    fallback: {{backend: legacy, on: {on}}}\n"
        "  fail:\n"
        "    backend: drf\n"
        f"    fallback: {{backend: legacy, on: {on}}}\n"
        "  tours: legacy\n"
    )
    return routes_yaml({"drf": drf.url, "legacy": legacy.url}, "legacy", resources)


async def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Everything the proxy sends back on one connection (the request asks it to close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


@pytest.fixture
async def pair(upstream_factory) -> tuple[Upstream, Upstream]:  # type: ignore[no-untyped-def]
    drf = await upstream_factory(canned(by_path))
    legacy = await upstream_factory(canned(FALLBACK_ANSWER))
    return drf, legacy


async def test_404_is_replayed_and_the_fallback_answer_returned_byte_for_byte(pair) -> None:
    drf, legacy = pair
    request = (
        b"POST /bookings/resource HTTP/1.1\r\nHost: api\r\nX-Request-ID: r-1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n"
        b'{"customer":3}'
    )
    async with routed_proxy(routes(drf, legacy)) as proxy:
        answer = await raw(proxy.port, request)
        assert sample(proxy, FALLBACKS, resource="bookings", from_backend="drf",
                      to_backend="legacy", code="404") == 1.0  # fmt: skip
        assert proxy.pool_size() == 2  # the first answer was read: both connections are idle
    assert answer == (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 9\r\n"
        b"X-Request-ID: r-1\r\nConnection: close\r\n\r\n"
        b'{"id": 9}'
    )
    [first], [again] = drf.requests, legacy.requests
    assert again == first
    assert first.body == b'{"customer":3}'
    assert first.head == (
        b"POST /bookings/resource HTTP/1.1\r\nHost: api\r\nX-Request-ID: r-1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 14\r\n"
        b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: api"
    )


async def test_a_generated_request_id_is_the_same_on_both_backends(pair) -> None:
    drf, legacy = pair
    async with routed_proxy(routes(drf, legacy)) as proxy:
        answer = await raw(
            proxy.port, b"GET /bookings/resource/7 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    [first], [again] = drf.requests, legacy.requests
    request_id = dict(first.headers)[b"X-Request-ID"]
    assert len(request_id) == 32
    assert again == first
    assert b"\r\nX-Request-ID: %b\r\n" % request_id in answer


async def test_codes_not_listed_are_returned(pair) -> None:
    drf, legacy = pair
    async with routed_proxy(routes(drf, legacy)) as proxy:
        answer = await raw(
            proxy.port, b"GET /fail HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert sample(proxy, FALLBACKS, resource="fail", from_backend="drf",
                      to_backend="legacy", code="500") is None  # fmt: skip
        assert proxy.state.debt.entries() == []
    assert answer.startswith(b"HTTP/1.1 500 INTERNAL SERVER ERROR\r\n")
    assert answer.endswith(b"\r\n\r\nboom")
    assert legacy.requests == []


async def test_500_replayed_when_listed(pair) -> None:
    drf, legacy = pair
    async with routed_proxy(routes(drf, legacy, on="[500]")) as proxy:
        answer = await raw(
            proxy.port, b"GET /fail HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")
    assert len(legacy.requests) == 1


async def test_a_resource_already_on_the_fallback_backend_is_not_replayed(upstream_factory) -> None:
    legacy = await upstream_factory(canned(not_found))
    resources = "  bookings:\n    backend: legacy\n    fallback: {backend: legacy, on: [404]}\n"
    async with routed_proxy(routes_yaml({"legacy": legacy.url}, "legacy", resources)) as proxy:
        answer = await raw(
            proxy.port, b"GET /bookings/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 404 NOT FOUND\r\n")
    assert len(legacy.requests) == 1


@pytest.mark.parametrize("size", [10, 11, 1000])
async def test_body_over_the_cap_is_not_replayed(pair, size: int) -> None:
    drf, legacy = pair
    body = b"x" * size
    request = (
        b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%b" % (size, body)
    )
    async with routed_proxy(routes(drf, legacy), Settings(fallback_body_cap=10)) as proxy:
        answer = await raw(proxy.port, request)
        fallbacks = sample(proxy, FALLBACKS, resource="bookings", from_backend="drf",
                           to_backend="legacy", code="404")  # fmt: skip
        [entry] = proxy.state.debt.entries()
    replayed = size <= 10
    assert answer.startswith(b"HTTP/1.1 201 Created" if replayed else b"HTTP/1.1 404 NOT FOUND")
    assert [r.body for r in drf.requests] == [body]
    assert [r.body for r in legacy.requests] == ([body] if replayed else [])
    assert fallbacks == (1.0 if replayed else None)
    assert (entry.count, entry.not_replayed) == (1, 0 if replayed else 1)


async def test_chunked_body_under_the_cap_replayed_exactly(pair) -> None:
    drf, legacy = pair
    request = (
        b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    async with routed_proxy(routes(drf, legacy)) as proxy:
        answer = await raw(proxy.port, request)
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")
    [first], [again] = drf.requests, legacy.requests
    assert first == again
    assert first.body == b"hello world"
    assert b"\r\nTransfer-Encoding: chunked\r\n" in first.head + b"\r\n"


async def test_chunked_body_over_the_cap_streams_to_the_first_backend_only(pair) -> None:
    drf, legacy = pair
    chunks = b"".join(b"400\r\n%b\r\n" % (bytes([65 + n]) * 1024) for n in range(20))
    request = (
        b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n%b0\r\n\r\n" % chunks
    )
    async with routed_proxy(routes(drf, legacy), Settings(fallback_body_cap=4096)) as proxy:
        answer = await raw(proxy.port, request)
    assert answer.startswith(b"HTTP/1.1 404 NOT FOUND\r\n")
    assert drf.requests[0].body == b"".join(bytes([65 + n]) * 1024 for n in range(20))
    assert legacy.requests == []


def answers_before_the_body(upstream: Upstream):  # type: ignore[no-untyped-def]
    """A backend that answers 404 as soon as it has the head, without reading the body."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        upstream.requests.append(RawRequest(head, b""))
        writer.write(respond(b"404 NOT FOUND", b"early"))
        await writer.drain()
        await reader.read()

    return handle


async def test_a_body_still_arriving_when_the_answer_comes_is_awaited_then_replayed(
    upstream_factory,
) -> None:
    drf = await upstream_factory(answers_before_the_body)
    legacy = await upstream_factory(canned(FALLBACK_ANSWER))
    async with routed_proxy(routes(drf, legacy)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")
        await asyncio.sleep(0.2)  # the first backend has answered 404 by now
        writer.write(b"def")
        head = await asyncio.wait_for(read_head(reader), 5)
        body = await read_body(reader, head)
        writer.close()
        [entry] = proxy.state.debt.entries()
    assert head.startswith(b"HTTP/1.1 201 Created\r\n") and body == b'{"id": 9}'
    assert [request.body for request in legacy.requests] == [b"abcdef"]
    assert (entry.count, entry.not_replayed) == (1, 0)
    labels = {"resource": "bookings", "from_backend": "drf", "to_backend": "legacy"}
    assert sample(proxy, FALLBACKS, **labels, code="404") == 1.0


async def test_a_body_that_stops_arriving_gets_a_408(upstream_factory) -> None:
    drf = await upstream_factory(answers_before_the_body)
    legacy = await upstream_factory(canned(FALLBACK_ANSWER))
    text = routes(drf, legacy).replace(
        f"url: {legacy.url}", f"url: {legacy.url}\n    read_timeout: 0.3"
    )
    async with routed_proxy(text) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")
        head = await asyncio.wait_for(read_head(reader), 5)
        body = await read_body(reader, head)
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert json.loads(body) == {
        "http_status_code": 408,
        "message": "Request timeout: the request body did not arrive in time.",
        "errors": [],
    }
    assert legacy.requests == []


async def test_a_chunked_body_still_arriving_is_not_replayed(upstream_factory) -> None:
    drf = await upstream_factory(answers_before_the_body)
    legacy = await upstream_factory(canned(FALLBACK_ANSWER))
    async with routed_proxy(routes(drf, legacy)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(
            b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        head = await asyncio.wait_for(read_head(reader), 5)
        body = await read_body(reader, head)
        writer.write(b"3\r\ndef\r\n0\r\n\r\n")
        writer.close()
        [entry] = proxy.state.debt.entries()
    assert head.startswith(b"HTTP/1.1 404 NOT FOUND\r\n") and body == b"early"
    assert legacy.requests == []
    assert (entry.count, entry.not_replayed) == (1, 1)


async def test_a_large_first_answer_is_dropped_by_closing_its_connection(upstream_factory) -> None:
    big = respond(b"404 NOT FOUND", b"n" * 200_000)
    drf = await upstream_factory(canned(big))
    legacy = await upstream_factory(canned(FALLBACK_ANSWER))
    async with routed_proxy(routes(drf, legacy)) as proxy:
        answer = await raw(
            proxy.port, b"GET /bookings/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        await asyncio.sleep(0.05)
        assert drf.open_connections == 0
    assert answer.endswith(b'\r\n\r\n{"id": 9}')


async def test_fallback_backend_down_is_a_502_counted_on_it(upstream_factory) -> None:
    from tests.support import free_port

    drf = await upstream_factory(canned(not_found))
    resources = "  bookings:\n    backend: drf\n    fallback: {backend: legacy, on: [404]}\n"
    legacy_url = f"http://127.0.0.1:{free_port()}"
    text = routes_yaml({"drf": drf.url, "legacy": legacy_url}, "drf", resources)
    async with routed_proxy(text) as proxy:
        answer = await raw(proxy.port, b"GET /bookings/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        errors = sample(proxy, "strangler_upstream_errors_total", backend="legacy", kind="connect")
        done = sample(proxy, "strangler_requests_total", resource="bookings", backend="legacy",
                      method="GET", code="502")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"\r\nX-Request-ID: " in answer
    assert (errors, done) == (1.0, 1.0)


async def test_many_fallbacks_leak_no_connection(pair) -> None:
    drf, legacy = pair
    async with routed_proxy(routes(drf, legacy)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for n in range(200):
            writer.write(
                b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n%04d" % n
            )
            head = await asyncio.wait_for(read_head(reader), 5)
            assert head.startswith(b"HTTP/1.1 201 Created\r\n")
            assert await read_body(reader, head) == b'{"id": 9}'
        writer.close()
        assert proxy.pool_size() == 2
        assert (drf.connections, legacy.connections) == (1, 1)
        assert sample(proxy, FALLBACKS, resource="bookings", from_backend="drf",
                      to_backend="legacy", code="404") == 200.0  # fmt: skip
        done = sample(proxy, "strangler_requests_total", resource="bookings", backend="legacy",
                      method="POST", code="201")  # fmt: skip
    assert done == 200.0
    assert [r.body for r in legacy.requests] == [b"%04d" % n for n in range(200)]


async def test_access_log_names_the_replaced_backend(pair) -> None:
    import io

    drf, legacy = pair
    log = io.StringIO()
    async with routed_proxy(routes(drf, legacy), log=log) as proxy:
        await raw(
            proxy.port, b"GET /bookings/resource HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        await raw(proxy.port, b"GET /bookings/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        lines = log_lines(proxy, log)
    assert [(line["backend"], line["status"], line["fallback"]) for line in lines] == [
        ("legacy", 201, "drf"),
        ("drf", 200, False),
    ]
    assert lines[0]["bytes_out"] == 9


# -- the debt it records: GET /-/debt --------------------------------------------------------


async def test_debt_endpoint(pair, aiohttp_client: Callable) -> None:  # type: ignore[type-arg]
    drf, legacy = pair
    async with routed_proxy(routes(drf, legacy)) as proxy:
        for path in (b"/bookings/resource", b"/bookings/resource/4", b"/bookings/resource/5"):
            await raw(proxy.port, b"GET %b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path)
        await raw(
            proxy.port, b"POST /bookings/resource HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        await raw(proxy.port, b"GET /bookings/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        client: TestClient = await aiohttp_client(make_admin_app(proxy.state))
        response = await client.get("/-/debt")
        body = await response.json()
        narrowed = await (await client.get("/-/debt?resource=tours")).json()
    assert response.status == 200
    assert [(e["shape"], e["count"], e["codes"]) for e in body] == [
        ("GET /bookings/resource/{id}", 2, {"404": 2}),
        ("POST /bookings/resource", 1, {"404": 1}),  # same count: the most recent first
        ("GET /bookings/resource", 1, {"404": 1}),
    ]
    assert all(
        e["resource"] == "bookings" and e["backends"] == {"drf -> legacy": e["count"]} for e in body
    )
    assert narrowed == []


async def test_a_forced_request_is_not_replayed(pair) -> None:
    drf, legacy = pair
    settings = Settings(tester_token="t0k")
    async with routed_proxy(routes(drf, legacy), settings) as proxy:
        forced = await raw(
            proxy.port,
            b"GET /bookings/resource HTTP/1.1\r\nHost: a\r\nX-Strangler-Force: drf; token=t0k\r\n"
            b"Connection: close\r\n\r\n",
        )
        routed = await raw(
            proxy.port, b"GET /bookings/resource HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    assert forced.startswith(b"HTTP/1.1 404 NOT FOUND\r\n")
    assert routed.startswith(b"HTTP/1.1 201 Created\r\n")
    assert (len(drf.requests), len(legacy.requests)) == (2, 1)
