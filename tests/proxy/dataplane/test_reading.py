"""proxy.dataplane.reading: request line, headers and body over the limits: 414, 431, 413
(and 400 for non-HTTP)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httptools
import pytest

from proxy.dataplane.reading import ALIVE_WITHOUT_CONNECTION
from proxy.settings import Settings
from tests.support.raw_http import canned, exchange, read_response, respond

LIMITS = Settings(
    max_request_line=100, max_header_size=200, max_headers_total=1000, max_body_size=64
)


async def rejected(port: int, data: bytes, status: int) -> None:
    result = await exchange(port, data)
    assert result.status == status
    assert json.loads(result.body)["http_status_code"] == status
    assert result.header(b"Connection") == b"close"


async def test_long_request_target_is_414(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    await rejected(proxy.port, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414)
    ok = await exchange(proxy.port, b"GET /" + b"a" * 98 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert ok.status == 200
    assert len(upstream.requests) == 1


async def test_long_header_field_is_431(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    await rejected(
        proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"v" * 200 + b"\r\n\r\n", 431
    )
    assert upstream.requests == []


async def test_header_block_too_large_is_431(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    many = b"".join(b"X-H%d: %b\r\n" % (n, b"v" * 90) for n in range(12))
    await rejected(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", 431)
    assert upstream.requests == []


async def test_declared_body_too_large_is_413_before_the_backend(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    await rejected(proxy.port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n", 413)
    assert upstream.requests == []


async def test_chunked_body_over_the_limit_is_413(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"20\r\n" + b"x" * 32 + b"\r\n")
    await asyncio.sleep(0.05)
    writer.write(b"21\r\n" + b"y" * 33 + b"\r\n")
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert result.status == 413
    assert json.loads(result.body)["http_status_code"] == 413


async def test_body_at_the_limit_passes(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    result = await exchange(
        proxy.port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 64\r\n\r\n" + b"b" * 64
    )
    assert result.status == 200
    assert upstream.requests[0].body == b"b" * 64


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ],
)
async def test_not_http_is_400(upstream_factory, proxy_factory, garbage):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    await rejected(proxy.port, garbage, 400)
    assert upstream.requests == []


def post_too_much(port: int) -> bytes:
    """Sends a large body without reading, then reads: what a plain blocking client does."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4000000\r\n\r\n")
            for _ in range(100):
                sock.sendall(b"x" * 40000)
        except OSError:
            pass
        time.sleep(0.3)
        return sock.recv(65536)


async def test_client_still_sending_reads_the_413(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    answer = await asyncio.to_thread(post_too_much, proxy.port)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert upstream.requests == []


def answer_then_keep_sending(port: int) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4000000\r\n\r\n")
        answer = sock.recv(65536)
        for _ in range(50):
            sock.sendall(b"x" * 40000)
        return answer, sock.recv(65536)


async def test_rejected_connection_lingers_instead_of_resetting(upstream_factory, proxy_factory):
    """After a 413 the proxy half-closes and discards input, so a client mid-upload is not reset
    (on a real network a reset can destroy the answer before the client reads it)."""
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, LIMITS)
    answer, after = await asyncio.to_thread(answer_then_keep_sending, proxy.port)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert after == b""


# -- a request head that trickles in: 408 once `header_timeout` has passed since it began ------

SLOW = Settings(header_timeout=0.4, keepalive_timeout=5.0)


async def test_a_head_trickling_past_the_header_timeout_is_408(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, SLOW)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"s" * 100
    answered = asyncio.ensure_future(read_response(reader))
    for byte in head:  # one byte every 20 ms: never idle, never complete
        if answered.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.02)
    result = await asyncio.wait_for(answered, 5)
    elapsed = loop.time() - started
    assert result.status == 408
    assert json.loads(result.body) == {
        "http_status_code": 408,
        "message": "Request timeout: the request head did not arrive in time.",
        "errors": [],
    }
    assert result.header(b"Connection") == b"close"
    assert 0.4 <= elapsed < 1.5
    assert await asyncio.wait_for(reader.read(), 5) == b""  # then the connection closes
    writer.close()
    assert upstream.requests == []


async def test_a_slow_head_within_the_timeout_passes(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond(body=b"fine")))
    proxy = await proxy_factory(upstream.url, SLOW)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for piece in (b"GET /slow HTTP/1.1\r\n", b"Host: h\r\n", b"\r\n"):
        writer.write(piece)
        await asyncio.sleep(0.1)
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert (result.status, result.body) == (200, b"fine")


async def test_an_idle_keep_alive_connection_is_not_a_slow_head(upstream_factory, proxy_factory):
    """Between requests nothing is timed but idleness: the next request after a pause longer
    than header_timeout (shorter than keepalive_timeout) is served."""
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, SLOW)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await asyncio.wait_for(read_response(reader), 5)).status == 200
        await asyncio.sleep(1.0)
    writer.close()
    assert len(upstream.requests) == 2


def test_header_timeout_from_the_environment() -> None:
    assert Settings.from_env({}).header_timeout == 30.0
    assert Settings.from_env({"STRANGLER_HEADER_TIMEOUT": "2.5"}).header_timeout == 2.5


def test_without_a_connection_header_only_http_1_1_is_kept_alive() -> None:
    """What `reading.ALIVE_WITHOUT_CONNECTION` rests on, for every version llhttp takes: a request
    kept alive without a `Connection` header is HTTP/1.1 (its version is then not asked for)."""
    taken = {}
    for major in range(10):
        for minor in range(10):
            parser = httptools.HttpRequestParser(object())
            try:
                parser.feed_data(b"GET / HTTP/%d.%d\r\nHost: h\r\n\r\n" % (major, minor))
            except httptools.HttpParserError:
                continue
            taken[parser.get_http_version()] = parser.should_keep_alive()
    assert taken == {"0.9": False, "1.0": False, "1.1": True, "2.0": False}
    assert ALIVE_WITHOUT_CONNECTION == "1.1"


@pytest.mark.parametrize(
    ("version", "connection", "answer_connection"),
    [
        (b"1.1", b"", None),
        (b"1.1", b"Connection: close\r\n", b"close"),
        (b"1.0", b"", None),  # closed after the answer, as HTTP/1.0 is by default
        (b"1.0", b"Connection: keep-alive\r\n", b"keep-alive"),
    ],
)
async def test_the_version_decides_what_the_answer_says_of_the_connection(
    upstream_factory, proxy_factory, version, connection, answer_connection
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    request = b"GET /x HTTP/%b\r\nHost: h\r\n%b\r\n" % (version, connection)
    result = await exchange(proxy.port, request)
    assert result.status == 200
    assert result.header(b"Connection") == answer_connection


@pytest.mark.parametrize("length", [b"5", b"05", b"5 ", b"5\t", b"5 \t"])
async def test_a_content_length_with_the_spaces_llhttp_allows_frames_both_bodies(
    upstream_factory, proxy_factory, length
):
    """`Content-Length` as the bytes came, trailing spaces and all, on the request and on the
    response: exactly five body bytes go each way, and the connections stay usable."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %b\r\n\r\nhello" % length
    upstream = await upstream_factory(canned(answer))
    proxy = await proxy_factory(upstream.url)
    request = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %b\r\n\r\nworld" % length
    first, second = (await exchange(proxy.port, request), await exchange(proxy.port, request))
    assert (first.status, first.body, second.status, second.body) == (200, b"hello", 200, b"hello")
    assert [received.body for received in upstream.requests] == [b"world", b"world"]
