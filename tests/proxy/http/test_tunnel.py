"""Connection upgrades through the proxy (proxy.http.tunnel): a real WebSocket echo backend
(aiohttp) and a real aiohttp client, plus raw sockets for the byte-level cases."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from proxy.http.streams import HIGH_WATER
from proxy.settings import Settings
from tests.support.raw_http import RawRequest, canned, read_body, read_head, read_response, respond

MIB = 1024 * 1024
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


@dataclass
class WsBackend:
    """An aiohttp WebSocket server on loopback; what it saw, per connection."""

    port: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    upgrades: list[str | None] = field(default_factory=list)  # the Upgrade header it got
    pongs: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


BACKEND = web.AppKey("backend", WsBackend)


async def echo(request: web.Request) -> web.WebSocketResponse:
    """Echoes text and binary messages; on `hello` first pings the client (payload `srv`)."""
    backend = request.app[BACKEND]
    backend.upgrades.append(request.headers.get("Upgrade"))
    ws = web.WebSocketResponse(max_msg_size=0, autoping=False)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            if message.data == "hello":
                await ws.ping(b"srv")
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
        elif message.type == WSMsgType.PING:
            await ws.pong(message.data)
        elif message.type == WSMsgType.PONG:
            backend.pongs.append(message.data)
    backend.close_codes.append(ws.close_code)
    return ws


async def bye(request: web.Request) -> web.WebSocketResponse:
    """Closes the socket itself (code 4000) after the first message."""
    backend = request.app[BACKEND]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.receive()
    await ws.close(code=4000, message=b"done")  # returns once the client's close frame is in
    backend.close_codes.append(ws.close_code)
    return ws


async def flood(request: web.Request) -> web.WebSocketResponse:
    """Sends `?mib=N` binary messages of 1 MiB as fast as the connection takes them."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    for index in range(int(request.query["mib"])):
        await ws.send_bytes(bytes([index % 256]) * MIB)
    await ws.close()
    return ws


@pytest.fixture
async def ws_backend() -> AsyncIterator[WsBackend]:
    backend = WsBackend()
    app = web.Application()
    app[BACKEND] = backend
    app.router.add_get("/echo", echo)
    app.router.add_get("/bye", bye)
    app.router.add_get("/flood", flood)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    backend.port = runner.addresses[0][1]
    yield backend
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def count_101(proxy) -> float:
    labels = {"resource": "other", "backend": "app", "method": "GET", "code": "101"}
    return proxy.state.registry.get_sample_value("strangler_requests_total", labels) or 0.0


def open_tunnels(proxy) -> float:
    labels = {"backend": "app"}
    return proxy.state.registry.get_sample_value("strangler_open_tunnels", labels) or 0.0


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- WebSocket through the proxy ---------------------------------------------------------------


async def test_text_and_binary_messages_echoed(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    async with session.ws_connect(f"http://127.0.0.1:{proxy.port}/echo") as ws:
        await ws.send_str("héllo wörld")
        assert await ws.receive_str(timeout=5) == "héllo wörld"
        await ws.send_bytes(b"\x00\x01\xff binary")
        assert await ws.receive_bytes(timeout=5) == b"\x00\x01\xff binary"
        for number in range(20):
            await ws.send_str(f"message {number}")
        assert [await ws.receive_str(timeout=5) for _ in range(20)] == [
            f"message {number}" for number in range(20)
        ]
    assert ws_backend.upgrades == ["websocket"]


async def test_large_messages_both_ways(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    url = f"http://127.0.0.1:{proxy.port}/echo"
    async with session.ws_connect(url, max_msg_size=0) as ws:
        payload = bytes(range(256)) * (12 * MIB // 256)  # 12 MiB: far over the buffer bounds
        await ws.send_bytes(payload)
        assert await ws.receive_bytes(timeout=30) == payload


async def test_slow_client_keeps_the_proxy_buffers_bounded(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    url = f"http://127.0.0.1:{proxy.port}/flood?mib=48"
    async with session.ws_connect(url, max_msg_size=0) as ws:
        await asyncio.sleep(1.0)  # the client reads nothing: the backend must be held back
        (conn,) = proxy.listener.connections
        assert conn.transport is not None
        # the proxy's own write buffer to the client stays near its high-water mark, though
        # 48 MiB wait: reading from the backend paused (the kernel buffers hold the rest)
        assert conn.transport.get_write_buffer_size() <= HIGH_WATER + 2 * MIB
        received = 0
        async for message in ws:
            assert message.type == WSMsgType.BINARY
            assert message.data == bytes([received % 256]) * MIB
            received += 1
    assert received == 48


async def test_close_handshake_from_the_client(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    async with session.ws_connect(f"http://127.0.0.1:{proxy.port}/echo") as ws:
        await ws.send_str("x")
        assert await ws.receive_str(timeout=5) == "x"
        assert await ws.close(code=4001, message=b"client leaves")
        assert ws.close_code == 1000  # the backend's answering close frame, through the tunnel
    await until(lambda: ws_backend.close_codes == [4001])
    await until(lambda: not proxy.listener.connections)


async def test_close_handshake_from_the_backend(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    async with session.ws_connect(f"http://127.0.0.1:{proxy.port}/bye") as ws:
        await ws.send_str("anything")
        message = await ws.receive(timeout=5)
        assert message.type == WSMsgType.CLOSE
        assert message.data == 4000 and message.extra == "done"
    await until(lambda: ws_backend.close_codes == [1000])  # the client's answering close frame
    await until(lambda: not proxy.listener.connections)


async def test_ping_and_pong_both_ways(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    url = f"http://127.0.0.1:{proxy.port}/echo"
    async with session.ws_connect(url, autoping=False) as ws:
        await ws.ping(b"cli")
        message = await ws.receive(timeout=5)
        assert (message.type, message.data) == (WSMsgType.PONG, b"cli")
        await ws.send_str("hello")  # the backend pings first, then echoes
        message = await ws.receive(timeout=5)
        assert (message.type, message.data) == (WSMsgType.PING, b"srv")
        await ws.pong(message.data)
        assert await ws.receive_str(timeout=5) == "hello"
        await until(lambda: ws_backend.pongs == [b"srv"])


async def test_idle_tunnel_is_closed_after_the_timeout(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url, Settings(tunnel_idle_timeout=0.3))
    url = f"http://127.0.0.1:{proxy.port}/echo"
    async with session.ws_connect(url, autoping=False) as ws:
        await ws.send_str("still here")
        assert await ws.receive_str(timeout=5) == "still here"
        assert open_tunnels(proxy) == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        message = await ws.receive(timeout=5)
        assert message.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
        assert 0.25 <= loop.time() - started < 3
    await until(lambda: ws_backend.close_codes != [])  # the backend's side was cut too
    await until(lambda: not proxy.listener.connections)
    assert open_tunnels(proxy) == 0


async def test_a_tunnel_counts_as_one_101_when_it_ends(ws_backend, proxy_factory, session):
    proxy = await proxy_factory(ws_backend.url)
    async with session.ws_connect(f"http://127.0.0.1:{proxy.port}/echo") as ws:
        await ws.send_str("x")
        assert await ws.receive_str(timeout=5) == "x"
        assert open_tunnels(proxy) == 1
        assert count_101(proxy) == 0  # not while it is open
    await until(lambda: count_101(proxy) == 1)
    assert open_tunnels(proxy) == 0
    labels = {"backend": "app"}
    in_flight = proxy.state.registry.get_sample_value("strangler_in_flight_requests", labels)
    assert in_flight == 0


# -- byte level ---------------------------------------------------------------------------------


def switching_upstream(greeting: bytes = b""):
    """A raw upstream: answers an upgrade with 101 (and `greeting` in the same write), then
    echoes every byte back, upper-cased, until EOF; then says `bye` and closes."""

    def make(upstream):
        async def handle(reader, writer):
            head = await read_head(reader)
            upstream.requests.append(RawRequest(head, b""))
            while b"Upgrade: websocket" not in head:  # a plain request first, on this connection
                writer.write(respond(b"200 OK", b"plain"))
                head = await read_head(reader)
                upstream.requests.append(RawRequest(head, b""))
            writer.write(SWITCHING + greeting)
            while data := await reader.read(65536):
                writer.write(data.upper())
            writer.write(b"bye")
            await writer.drain()

        return handle

    return make


async def test_bytes_right_after_the_upgrade_head_go_first(upstream_factory, proxy_factory):
    upstream = await upstream_factory(switching_upstream(greeting=b"welcome;"))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(UPGRADE + b"early bytes;")  # pipelined with the head, before any answer
    head = await asyncio.wait_for(read_head(reader), 5)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert await asyncio.wait_for(reader.readexactly(20), 5) == b"welcome;EARLY BYTES;"
    writer.write(b"later")
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"LATER"
    writer.close()
    request = upstream.requests[0]
    assert (b"Upgrade", b"websocket") in request.headers
    assert (b"Connection", b"upgrade") in request.headers


async def test_an_upgrade_pipelined_behind_a_request(upstream_factory, proxy_factory):
    upstream = await upstream_factory(switching_upstream())
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    firefox = UPGRADE.replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade")
    writer.write(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n" + firefox + b"ping")
    first = await asyncio.wait_for(read_response(reader), 5)
    assert (first.status, first.body) == (200, b"plain")
    head = await asyncio.wait_for(read_head(reader), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"PING"
    writer.close()
    assert [request.request_line for request in upstream.requests] == [
        b"GET /first HTTP/1.1",
        b"GET /chat HTTP/1.1",
    ]


async def test_the_101_head_relayed(upstream_factory, proxy_factory):
    upstream = await upstream_factory(switching_upstream())
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(UPGRADE.replace(b"Host: h\r\n", b"Host: h\r\nX-Request-ID: r-101\r\n"))
    head = await asyncio.wait_for(read_head(reader), 5)
    writer.close()
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"X-Request-ID: r-101\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: upgrade"
    )


async def test_half_close_passes_through(upstream_factory, proxy_factory):
    upstream = await upstream_factory(switching_upstream())
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(UPGRADE)
    await asyncio.wait_for(read_head(reader), 5)
    writer.write(b"last words")
    writer.write_eof()  # the backend sees EOF, and can still answer
    assert await asyncio.wait_for(reader.read(), 5) == b"LAST WORDSbye"  # then EOF from it
    writer.close()
    await until(lambda: not proxy.listener.connections)


async def test_a_non_101_answer_is_ordinary_and_the_connection_goes_on(
    upstream_factory, proxy_factory
):
    def answer(request: RawRequest) -> bytes:
        if request.request_line.startswith(b"GET /chat"):
            return respond(b"403 Forbidden", b"no websockets here")
        return respond(b"200 OK", b"plain")

    upstream = await upstream_factory(canned(answer))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(UPGRADE + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")  # HTTP after it
    refused = await asyncio.wait_for(read_response(reader), 5)
    following = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert (refused.status, refused.body) == (403, b"no websockets here")
    assert refused.header(b"Upgrade") is None and refused.header(b"Connection") is None
    assert (following.status, following.body) == (200, b"plain")
    assert [request.request_line for request in upstream.requests] == [
        b"GET /chat HTTP/1.1",
        b"GET /next HTTP/1.1",
    ]
    assert (b"Upgrade", b"websocket") in upstream.requests[0].headers
    assert proxy.state.registry.get_sample_value(
        "strangler_requests_total",
        {"resource": "other", "backend": "app", "method": "GET", "code": "403"},
    )


async def test_h2c_upgrade_is_forwarded_without_it(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond(b"200 OK", b"http/1.1 it is")))
    proxy = await proxy_factory(upstream.url)
    h2c = (
        b"GET /tours HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(h2c + b"GET /again HTTP/1.1\r\nHost: h\r\nHTTP2-Settings: AAMA\r\n\r\n")
        first = await asyncio.wait_for(read_response(reader), 5)
        second = await asyncio.wait_for(read_response(reader), 5)
        writer.close()
    assert (first.status_line, first.body) == (b"HTTP/1.1 200 OK", b"http/1.1 it is")
    assert first.header(b"Upgrade") is None
    assert second.status == 200
    for request in upstream.requests:
        names = {name.lower() for name, _ in request.headers}
        assert not names & {b"upgrade", b"http2-settings", b"connection"}
    assert len(upstream.requests) == 2


async def test_an_upgrade_from_an_http10_client_is_not_tunnelled(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond(b"200 OK", b"old")))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"))
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert result.status == 200
    names = {name.lower() for name, _ in upstream.requests[0].headers}
    assert b"upgrade" not in names


async def test_an_upgrade_with_a_body_is_refused(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(UPGRADE.replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\nbody"))
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert result.status == 400
    assert upstream.requests == []


async def test_a_101_to_a_plain_request_is_502(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(SWITCHING))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    head = await asyncio.wait_for(read_head(reader), 5)
    body = await asyncio.wait_for(read_body(reader, head), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 502 ")
    assert b'"http_status_code": 502' in body
