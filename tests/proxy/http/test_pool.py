"""proxy.http.pool, through the proxy: connecting (refused, timed out), the pool's limit (and the
other 503 sent without asking a backend: draining), reuse of idle connections within the backend's
`Keep-Alive` timeout, the one retry of a request the backend closed on, and connections released
whatever the client does."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest

from tests.proxy.http.test_connection import GET, assert_envelope, errors, silent, trickle
from tests.support import free_port
from tests.support.raw_http import (
    RawRequest,
    Upstream,
    canned,
    exchange,
    read_body,
    read_head,
    read_response,
    respond,
)


async def test_refused_is_502(proxy_factory):
    port = free_port()
    proxy = await proxy_factory(f"http://127.0.0.1:{port}")
    assert_envelope(await exchange(proxy.port, GET), 502, port)
    assert errors(proxy, "connect") == 1


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: SYNs are dropped, so connecting hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        fillers.append(sock)
    yield port
    for sock in fillers:
        sock.close()
    listener.close()


async def test_connect_timeout_is_504(proxy_factory, full_backlog):
    proxy = await proxy_factory(f"http://127.0.0.1:{full_backlog}", connect_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert_envelope(await exchange(proxy.port, GET), 504, full_backlog)
    assert 0.25 < loop.time() - started < 2
    assert errors(proxy, "timeout") == 1


async def test_pool_full_is_503(upstream_factory, proxy_factory):
    upstream = await upstream_factory(silent)
    proxy = await proxy_factory(upstream.url, max_connections=1)
    first = asyncio.create_task(exchange(proxy.port, GET))
    while not upstream.requests:
        await asyncio.sleep(0.01)
    assert_envelope(await exchange(proxy.port, GET), 503, upstream.port)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_draining_is_503(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    proxy.state.draining = True
    result = await exchange(proxy.port, GET)
    assert_envelope(result, 503, upstream.port)
    assert result.header(b"Connection") == b"close"
    assert upstream.requests == []


def one_then_close_on_next(upstream: Upstream):
    """Answers the first request on a connection, then reads the next one and hangs up."""

    async def handle(reader, writer):
        head = await read_head(reader)
        upstream.requests.append(RawRequest(head, await read_body(reader, head)))
        writer.write(respond(body=b"served"))
        await writer.drain()
        head = await read_head(reader)
        if head:
            upstream.requests.append(RawRequest(head, await read_body(reader, head)))
        writer.transport.abort()

    return handle


async def test_get_on_a_connection_closed_after_send_is_retried(upstream_factory, proxy_factory):
    upstream = await upstream_factory(one_then_close_on_next)
    proxy = await proxy_factory(upstream.url)
    assert (await exchange(proxy.port, GET)).body == b"served"
    result = await exchange(proxy.port, GET)
    assert result.status == 200
    assert result.body == b"served"
    assert upstream.connections == 2


async def test_post_on_a_connection_closed_after_send_is_not_retried(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(one_then_close_on_next)
    proxy = await proxy_factory(upstream.url)
    post = b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: 2\r\n\r\n{}"
    assert (await exchange(proxy.port, post)).body == b"served"
    assert_envelope(await exchange(proxy.port, post), 502, upstream.port)
    assert [r.request_line for r in upstream.requests] == [b"POST /bookings HTTP/1.1"] * 2
    assert upstream.connections == 1


async def test_connection_closed_while_idle_costs_no_error(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond(body=b"fresh"), close=True))
    proxy = await proxy_factory(upstream.url)
    for _ in range(5):
        result = await exchange(
            proxy.port, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n!"
        )
        assert result.body == b"fresh"
        await asyncio.sleep(0.02)
    assert upstream.connections == 5
    assert len(upstream.requests) == 5


async def test_client_disconnects_release_upstream_connections(upstream_factory, proxy_factory):
    upstream = await upstream_factory(silent)
    proxy = await proxy_factory(upstream.url, max_connections=50)
    total, batch = 2000, 50

    async def abandon() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(GET)
        await writer.drain()
        # An abort resets the connection; a plain close is a half-close that still gets its
        # answer (see test_forward.test_half_closed_client_gets_its_answer).
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()

    for _ in range(total // batch):
        seen = len(upstream.requests)
        await asyncio.gather(*(abandon() for _ in range(batch)))
        while len(upstream.requests) < seen + batch and upstream.open_connections:
            await asyncio.sleep(0.005)
    for _ in range(300):
        if not (upstream.open_connections or proxy.pool_size() or proxy.listener.connections):
            break
        await asyncio.sleep(0.01)
    assert upstream.open_connections == 0
    assert proxy.pool_size() == 0
    assert not proxy.listener.connections
    gauge = proxy.state.registry.get_sample_value(
        "strangler_in_flight_requests", {"backend": "app"}
    )
    assert gauge == 0


async def test_client_gone_mid_download_releases_upstream(upstream_factory, proxy_factory):
    upstream = await upstream_factory(trickle(1000, 0.01))
    proxy = await proxy_factory(upstream.url)
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(GET)
        await read_head(reader)
        await reader.readexactly(8)
        writer.transport.abort()
    for _ in range(200):
        if upstream.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert upstream.open_connections == 0
    assert proxy.pool_size() == 0


async def test_idle_pool_is_reused_not_grown(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, max_connections=4)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for _ in range(25):
            writer.write(GET)
            assert (await asyncio.wait_for(read_response(reader), 5)).status == 200
        writer.close()

    await asyncio.gather(*(client() for _ in range(4)))
    assert len(upstream.requests) == 100
    assert upstream.connections <= 4
    assert proxy.pool_size() == upstream.connections


def forgets_idle_connections(seconds: float):
    """Announces `Keep-Alive: timeout=<seconds>`; a request arriving on a connection idle that
    long meets a close instead of an answer (the backend's close crossed it on the wire)."""

    def make(upstream: Upstream):
        async def handle(reader, writer):
            loop = asyncio.get_running_loop()
            answered_at = None
            while head := await read_head(reader):
                body = await read_body(reader, head)
                if answered_at is not None and loop.time() - answered_at >= seconds:
                    writer.transport.abort()
                    return
                upstream.requests.append(RawRequest(head, body))
                writer.write(respond(body=b"kept", headers=(b"Keep-Alive: timeout=%g" % seconds,)))
                await writer.drain()
                answered_at = loop.time()

        return handle

    return make


async def test_a_connection_past_the_backends_keep_alive_timeout_is_not_reused(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(forgets_idle_connections(1.5))
    proxy = await proxy_factory(upstream.url)
    post = b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: 2\r\n\r\n{}"
    for pause in (0.0, 0.05, 0.2):  # within the timeout less its 1 s margin: reused
        await asyncio.sleep(pause)
        result = await exchange(proxy.port, post)
        assert (result.status, result.body, result.header(b"Keep-Alive")) == (200, b"kept", None)
    assert upstream.connections == 1
    await asyncio.sleep(1.6)  # the backend has forgotten the connection
    result = await exchange(proxy.port, post)
    assert (result.status, result.body) == (200, b"kept")  # a POST: no retry could save it
    assert upstream.connections == 2
    assert len(upstream.requests) == 4
