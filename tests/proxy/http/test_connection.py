"""proxy.http.connection, through the proxy: a backend's answer byte by byte (framing, trailers,
bytes after the end, the head cap), its failures and timeouts as 502/504 envelopes, and the
`Keep-Alive` timeout it announces.

`GET`, `assert_envelope`, `errors`, `silent` and `trickle` are shared with test_pool and test_tls.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from proxy.http.exchange import keep_alive_timeout
from proxy.settings import Settings
from tests.support.raw_http import (
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

GET = b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n"


def assert_envelope(result, status: int, port: int) -> None:
    assert result.status == status
    assert result.header(b"Content-Type") == b"application/json"
    body = json.loads(result.body)
    assert body["http_status_code"] == status
    assert body["errors"] == []
    assert isinstance(body["message"], str) and body["message"]
    assert str(port).encode() not in result.body
    assert b"127.0.0.1" not in result.body
    assert b"Traceback" not in result.body


def errors(proxy, kind: str) -> float:
    labels = {"backend": "app", "kind": kind}
    return proxy.state.registry.get_sample_value("strangler_upstream_errors_total", labels) or 0


async def test_not_http_is_502(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", close=True))
    proxy = await proxy_factory(upstream.url)
    assert_envelope(await exchange(proxy.port, GET), 502, upstream.port)
    assert errors(proxy, "protocol") == 1


async def test_closed_without_answer_is_502(upstream_factory, proxy_factory):
    def make(upstream: Upstream):
        async def handle(reader, writer):
            await read_head(reader)

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url)
    assert_envelope(await exchange(proxy.port, GET), 502, upstream.port)
    assert errors(proxy, "reset") >= 1


def silent(upstream: Upstream):
    async def handle(reader, writer):
        head = await read_head(reader)
        upstream.requests.append(RawRequest(head, b""))
        await reader.read()

    return handle


async def test_no_answer_within_read_timeout_is_504(upstream_factory, proxy_factory):
    upstream = await upstream_factory(silent)
    proxy = await proxy_factory(upstream.url, read_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert_envelope(await exchange(proxy.port, GET), 504, upstream.port)
    assert 0.25 < loop.time() - started < 2
    assert errors(proxy, "timeout") == 1


def trickle(pieces: int, pause: float, stall: bool = False):
    """Sends a chunked body one piece every `pause` seconds (then stalls forever if `stall`)."""

    def make(upstream: Upstream):
        async def handle(reader, writer):
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for n in range(pieces):
                writer.write(b"2\r\n%02d\r\n" % n)
                await writer.drain()
                await asyncio.sleep(pause)
            if stall:
                await reader.read()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            await reader.read()

        return handle

    return make


async def test_download_that_keeps_flowing_is_never_cut(upstream_factory, proxy_factory):
    upstream = await upstream_factory(trickle(12, 0.1))
    proxy = await proxy_factory(upstream.url, read_timeout=0.35)
    result = await exchange(proxy.port, GET)
    assert result.status == 200
    assert result.body == b"".join(b"%02d" % n for n in range(12))


async def test_stall_mid_body_cuts_the_client_connection(upstream_factory, proxy_factory):
    upstream = await upstream_factory(trickle(2, 0.05, stall=True))
    proxy = await proxy_factory(upstream.url, read_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(GET)
    head = await asyncio.wait_for(read_head(reader), 5)
    assert head.startswith(b"HTTP/1.1 200 OK")
    with pytest.raises(ConnectionResetError):  # a reset, never a clean end (issue 10, item 3)
        await asyncio.wait_for(read_body(reader, head), 5)
    writer.close()
    assert errors(proxy, "timeout") == 1
    assert proxy.pool_size() == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"timeout=5", 5.0),
        (b"timeout=5, max=1000", 5.0),
        (b"max=1000, Timeout = 2.5", 2.5),
        (b'timeout="3"', 3.0),
        (b"max=3", None),
        (b"timeout=soon", None),
        (b"timeout=-1", None),
        (b"", None),
    ],
)
def test_keep_alive_timeout(value: bytes, seconds: float | None) -> None:
    assert keep_alive_timeout(value) == seconds


# A broken or hostile backend, byte by byte (issue 10: items 3, 5, 7, 8 and 13).


def scripted(*answers: bytes, then_close: bool = True):
    """Answers the backend's n-th request (on whichever connection) with `answers[n]` exactly,
    the last one again after that; closes after each answer when `then_close`."""

    def make(upstream: Upstream):
        async def handle(reader, writer):
            while head := await read_head(reader):
                upstream.requests.append(RawRequest(head, await read_body(reader, head)))
                writer.write(answers[min(len(upstream.requests), len(answers)) - 1])
                await writer.drain()
                if then_close:
                    return

        return handle

    return make


async def read_all_or_reset(port: int, data: bytes) -> tuple[bytes, bool]:
    """Everything the proxy sends for `data`, and whether the connection ended in a reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            received += chunk
    except ConnectionResetError:
        return received, True
    finally:
        writer.close()
    return received, False


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n",
    ],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
async def test_truncated_answer_resets_the_client(upstream_factory, proxy_factory, answer, version):
    upstream = await upstream_factory(scripted(answer))
    proxy = await proxy_factory(upstream.url)
    request = b"GET /bookings/1 HTTP/" + version + b"\r\nHost: api\r\n\r\n"
    received, reset = await read_all_or_reset(proxy.port, request)
    assert reset, received
    assert errors(proxy, "reset") == 1


async def test_complete_close_delimited_answer_ends_cleanly(upstream_factory, proxy_factory):
    upstream = await upstream_factory(scripted(b"HTTP/1.1 200 OK\r\n\r\nall of it"))
    proxy = await proxy_factory(upstream.url)
    request = b"GET /bookings/1 HTTP/1.0\r\nHost: api\r\n\r\n"
    received, reset = await read_all_or_reset(proxy.port, request)
    assert not reset
    assert received.endswith(b"\r\n\r\nall of it")


async def test_response_trailers_are_never_promoted_into_the_head(upstream_factory, proxy_factory):
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n"
        b"2\r\nok\r\n0\r\nSet-Cookie: session=attacker\r\nX-Injected: 1\r\n\r\n"
    )
    upstream = await upstream_factory(scripted(answer, then_close=False))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, GET)
    assert result.status == 200
    assert result.body == b"ok"
    names = [name.lower() for name, _ in result.headers]
    assert b"set-cookie" not in names
    assert b"x-injected" not in names


async def two_answers(port: int) -> tuple[RawResponse, RawResponse]:
    """Two GETs one after the other on one client connection, and their answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(GET)
        one = await asyncio.wait_for(read_response(reader), 5)
        writer.write(GET)
        return one, await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSTRAY",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nbody!",
        b"HTTP/1.1 304 Not Modified\r\n\r\nbody!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 2",
    ],
    ids=["stray", "forged-response", "204-body", "304-body", "partial-head"],
)
async def test_bytes_after_a_complete_answer_break_the_connection(
    upstream_factory, proxy_factory, first
):
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
    upstream = await upstream_factory(scripted(first, second, then_close=False))
    proxy = await proxy_factory(upstream.url)
    one, two = await two_answers(proxy.port)
    assert one.status in (200, 204, 304)
    # The second request went out on a new connection and got the backend's real answer.
    assert (two.status, two.body) == (200, b"second")
    assert upstream.connections == 2


def in_pieces(*answers: tuple[bytes, ...], then_close: bool = False):
    """Answers the backend's n-th request with the pieces of `answers[n]`, each its own write a
    little apart, so that the proxy reads them one by one (a sized body past its first read goes
    to the body stream without the parser: proxy.http.connection)."""

    def make(upstream: Upstream):
        async def handle(reader, writer):
            while head := await read_head(reader):
                upstream.requests.append(RawRequest(head, await read_body(reader, head)))
                for piece in answers[min(len(upstream.requests), len(answers)) - 1]:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02)
                if then_close:
                    return

        return handle

    return make


def sized(body: bytes, cuts: int) -> tuple[bytes, ...]:
    """A 200 with a Content-Length, its head and the first bytes in one piece, the rest in
    `cuts` more."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    size = len(body) // (cuts + 1)
    return (head + body[:size], *(body[i * size : (i + 1) * size] for i in range(1, cuts)),
            body[cuts * size :])  # fmt: skip


async def test_sized_bodies_over_many_reads_arrive_whole_on_one_connection(
    upstream_factory, proxy_factory
):
    one, two = bytes(range(256)) * 1200, b"second answer " * 9000
    upstream = await upstream_factory(in_pieces(sized(one, 4), sized(two, 3)))
    proxy = await proxy_factory(upstream.url)
    first, second = await two_answers(proxy.port)
    assert (first.status, first.body) == (200, one)
    assert (second.status, second.body) == (200, two)
    assert upstream.connections == 1  # the parser dropped mid-body, a new one for the second


async def test_bytes_after_a_sized_body_in_a_later_read_break_the_connection(
    upstream_factory, proxy_factory
):
    first = (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", b"cdSTRAY")
    second = (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond",)
    upstream = await upstream_factory(in_pieces(first, second))
    proxy = await proxy_factory(upstream.url)
    one, two = await two_answers(proxy.port)
    assert (one.status, one.body) == (200, b"abcd")
    assert (two.status, two.body) == (200, b"second")
    assert upstream.connections == 2


async def test_sized_body_cut_after_its_first_read_resets_the_client(
    upstream_factory, proxy_factory
):
    pieces = (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"def")
    upstream = await upstream_factory(in_pieces(pieces, then_close=True))
    proxy = await proxy_factory(upstream.url)
    received, reset = await read_all_or_reset(proxy.port, GET)
    assert reset
    assert received.endswith(b"\r\n\r\nabcdef")
    assert errors(proxy, "reset") == 1


async def test_head_answer_followed_by_a_body_is_not_pooled(upstream_factory, proxy_factory):
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbody!"
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
    upstream = await upstream_factory(scripted(first, second, then_close=False))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"HEAD /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n")
    one = await asyncio.wait_for(read_response(reader, head_request=True), 5)
    await asyncio.sleep(0.05)  # the stray body arrives while the connection is idle or pooled
    writer.write(GET)
    two = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert one.status == 200
    assert (two.status, two.body) == (200, b"second")
    assert upstream.connections == 2


@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"gzip, chunked", b"chunked, gzip", b"chunked\r\nTransfer-Encoding: chunked"],
)
async def test_response_transfer_coding_other_than_chunked_is_502(
    upstream_factory, proxy_factory, coding
):
    gzipped = gzip.compress(b"this", mtime=0)
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
    answer += b"%x\r\n%b\r\n0\r\n\r\n" % (len(gzipped), gzipped)
    upstream = await upstream_factory(scripted(answer))
    proxy = await proxy_factory(upstream.url)
    assert_envelope(await exchange(proxy.port, GET), 502, upstream.port)
    assert errors(proxy, "protocol") == 1


async def test_response_head_over_the_cap_is_502_and_bounded(upstream_factory, proxy_factory):
    sent = 0

    def make(upstream: Upstream):
        async def handle(reader, writer):
            nonlocal sent
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
            try:
                while sent < 64 * 1024 * 1024:
                    writer.write(b"v" * 65536)
                    await writer.drain()
                    sent += 65536
            except ConnectionError:
                pass

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url, Settings(max_response_head=32 * 1024))
    assert_envelope(await exchange(proxy.port, GET), 502, upstream.port)
    assert sent < 16 * 1024 * 1024  # the proxy stopped reading long before 64 MiB
    assert errors(proxy, "protocol") == 1


async def test_response_head_within_the_cap_passes(upstream_factory, proxy_factory):
    headers = tuple(b"X-H%d: %s" % (n, b"v" * 1000) for n in range(20))
    upstream = await upstream_factory(canned(respond(headers=headers)))
    proxy = await proxy_factory(upstream.url, Settings(max_response_head=32 * 1024))
    result = await exchange(proxy.port, GET)
    assert result.status == 200
    assert result.header(b"X-H19") == b"v" * 1000


async def test_backend_that_never_reads_the_body_is_504(upstream_factory, proxy_factory):
    def make(upstream: Upstream):
        async def handle(reader, writer):
            upstream.requests.append(RawRequest(await read_head(reader), b""))
            await asyncio.sleep(30)  # reads nothing more

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url, read_timeout=0.5)
    size = 64 * 1024 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n" % size)

    async def upload() -> None:
        try:
            for _ in range(size // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionError:
            pass

    sending = asyncio.create_task(upload())
    result = await asyncio.wait_for(read_response(reader), 10)
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    writer.close()
    assert_envelope(result, 504, upstream.port)
    assert errors(proxy, "timeout") == 1
    assert proxy.pool_size() == 0
