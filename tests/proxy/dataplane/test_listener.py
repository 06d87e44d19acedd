"""proxy.dataplane.listener and reading against hostile and unusual clients, byte by byte:
trailers, half-closes, stalled bodies, Host rules, transfer codings, extension methods, a head
sent in pieces."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from proxy.settings import Settings
from tests.support.raw_http import (
    Handler,
    RawRequest,
    RawResponse,
    Upstream,
    canned,
    exchange,
    read_body,
    read_head,
    read_response,
    respond,
)


async def error_of(result: RawResponse, status: int) -> None:
    assert result.status == status
    assert json.loads(result.body)["http_status_code"] == status
    assert result.header(b"Connection") == b"close"


async def test_request_trailers_never_reach_the_next_request(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /bookings HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nAuthorization: Bearer victim\r\nX-Application-Key: victim\r\n"
        b"Host: evil\r\n\r\n"
        b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n"
    )
    first = await asyncio.wait_for(read_response(reader), 5)
    second = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert (first.status, second.status) == (200, 200)
    assert [request.request_line for request in upstream.requests] == [
        b"POST /bookings HTTP/1.1",
        b"GET /bookings/1 HTTP/1.1",
    ]
    assert upstream.requests[0].body == b"abc"
    for request in upstream.requests:
        names = {name.lower() for name, _ in request.headers}
        assert b"authorization" not in names
        assert b"x-application-key" not in names
    assert upstream.requests[1].body == b""
    assert [value for name, value in upstream.requests[1].headers if name == b"Host"] == [b"api"]


async def test_nothing_after_a_request_that_closes_the_connection_is_forwarded(
    upstream_factory, proxy_factory
):
    """The next request arrives in a read of its own while the first, `Connection: close`, is
    still at the backend: it is neither forwarded nor answered (llhttp refuses it; the fast path
    of proxy.http.scan does not read it)."""
    answer = asyncio.Event()

    def make(upstream: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while head := await read_head(reader):
                upstream.requests.append(RawRequest(head, await read_body(reader, head)))
                await answer.wait()
                writer.write(respond(body=b"first"))
                await writer.drain()

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    for _ in range(100):
        if upstream.requests:
            break
        await asyncio.sleep(0.02)
    writer.write(b"GET /bookings/2 HTTP/1.1\r\nHost: api\r\n\r\n")
    await asyncio.sleep(0.1)
    answer.set()
    first = await asyncio.wait_for(read_response(reader), 5)
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert (first.status, first.body, rest) == (200, b"first", b"")
    assert [request.request_line for request in upstream.requests] == [b"GET /bookings/1 HTTP/1.1"]


async def test_half_closed_client_gets_its_answer(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond(body=b"for you")))
    proxy = await proxy_factory(upstream.url)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := await asyncio.to_thread(sock.recv, 65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"for you"
    assert len(upstream.requests) == 1


async def test_half_close_during_the_body_is_not_forwarded_as_complete(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: 10\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        assert await asyncio.to_thread(sock.recv, 65536) == b""
    assert all(request.body != b"abc" for request in upstream.requests)


async def test_stalled_request_body_is_408_and_frees_the_backend(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, Settings(body_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: 100000\r\n\r\n0123456789"
    )
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    await error_of(result, 408)
    for _ in range(200):  # the backend's connection is closed, not left waiting for the rest
        if not upstream.open_connections:
            break
        await asyncio.sleep(0.01)
    assert upstream.open_connections == 0
    assert upstream.requests == []
    ok = await exchange(proxy.port, b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n")
    assert ok.status == 200


async def test_a_slow_but_steady_body_is_not_timed_out(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, Settings(body_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: 8\r\n\r\n")
    for byte in b"01234567":  # 0.8 s in all, never 0.3 s without a byte
        await asyncio.sleep(0.1)
        writer.write(bytes([byte]))
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert result.status == 200
    assert upstream.requests[0].body == b"01234567"


@pytest.mark.parametrize(
    "head",
    [
        b"GET /bookings/1 HTTP/1.1\r\n\r\n",
        b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\nHost: evil\r\n\r\n",
        b"GET /bookings/1 HTTP/1.0\r\nHost: api\r\nHost: evil\r\n\r\n",
    ],
    ids=["missing-1.1", "repeated-1.1", "repeated-1.0"],
)
async def test_host_missing_on_http11_or_repeated_is_400(upstream_factory, proxy_factory, head):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    await error_of(await exchange(proxy.port, head), 400)
    assert upstream.requests == []


async def test_http10_without_host_is_still_served(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET /bookings/1 HTTP/1.0\r\n\r\n")
    assert result.status == 200


@pytest.mark.parametrize(
    ("coding", "status"),
    [
        (b"gzip", 501),
        (b"gzip, chunked", 501),
        (b"identity", 501),
        (b"chunked, chunked", 400),  # chunked twice is malformed (RFC 9112 section 6.1)
        (b"chunked\r\nTransfer-Encoding: chunked", 400),
    ],
    ids=["gzip", "gzip-chunked", "identity", "chunked-twice", "two-fields"],
)
async def test_request_transfer_coding_other_than_chunked_is_refused(
    upstream_factory, proxy_factory, coding, status
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    data = (
        b"POST /bookings HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    await error_of(await exchange(proxy.port, data), status)
    assert upstream.requests == []


@pytest.mark.parametrize("method", [b"FOO", b"QUERY", b"PROPFIND", b"MKCALENDAR", b"X-Custom.1"])
async def test_extension_methods_reach_the_backend_unchanged(
    upstream_factory, proxy_factory, method
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    data = method + b" /bookings/1?x=%20 HTTP/1.1\r\nHost: api\r\nContent-Length: 3\r\n\r\nabc"
    result = await exchange(proxy.port, data)
    assert result.status == 200
    assert upstream.requests[0].request_line == method + b" /bookings/1?x=%20 HTTP/1.1"
    assert upstream.requests[0].body == b"abc"


async def test_extension_method_then_a_known_one_on_one_connection(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for method in (b"FOO", b"GET", b"BAR"):
        writer.write(method + b" /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n")
        assert (await asyncio.wait_for(read_response(reader), 5)).status == 200
    writer.close()
    assert [request.request_line.split(b" ")[0] for request in upstream.requests] == [
        b"FOO",
        b"GET",
        b"BAR",
    ]


@pytest.mark.parametrize("method", [b"G\x00T", b"GET\x7f", b"(GET)"])
async def test_methods_that_are_not_tokens_are_400(upstream_factory, proxy_factory, method):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    data = method + b" /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n"
    await error_of(await exchange(proxy.port, data), 400)
    assert upstream.requests == []


async def test_a_huge_header_line_in_pieces_is_refused_before_it_ends(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\nX-Big: ")
    sent = 0
    try:
        while sent < 64 * 1024 * 1024 and not reader.at_eof():  # never finishes the line
            writer.write(b"v" * 65536)
            await writer.drain()
            sent += 65536
            if len(reader._buffer):  # noqa: SLF001 - an answer has arrived
                break
            await asyncio.sleep(0)
    except ConnectionError:
        pass
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    await error_of(result, 431)
    assert sent < 1024 * 1024  # refused long before the 64 MiB line could end
    assert upstream.requests == []
