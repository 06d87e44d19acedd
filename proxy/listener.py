"""The public listener: HTTP/1.1 client connections parsed with httptools, one request at a time.

This is deliberately not an aiohttp application: the public port must pass the request target and
header bytes untouched, answer over-limit requests with 414/431/413, and be fast; a plain asyncio
protocol gives all three. Process state is still never global: a `Listener` gets its `Forwarder`
(which holds the `ProxyState`) from `proxy.server`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

import httptools

from proxy.batch import WriteBatch
from proxy.errors import (
    BadRequest,
    BodyTooLarge,
    HeadersTooLarge,
    ProxyError,
    RequestHeadTimeout,
    RequestLineTooLong,
    error_response,
)
from proxy.forward import Forwarder, Request, is_trusted
from proxy.settings import Settings
from proxy.streams import LOW_WATER, BodyStream, WriteFlow
from proxy.upstream import FRAMING_NAME_SIZES, Headers

MAX_HEADER_FIELDS = 100
LINGER_SECONDS = 2.0
log = logging.getLogger("strangler.listener")


class ClientGone(Exception):
    """The client closed its connection before its request body was complete."""


class ClientConnection(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._batch = listener.batch
        self._settings: Settings = listener.forwarder.state.settings
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._peer = ""
        self._trusted = False
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0
        self._length: int | None = None
        self._chunked = False
        self._connection = False
        self._body: BodyStream | None = None
        self._queue: deque[Request | ProxyError] = deque()
        self._task: asyncio.Task[None] | None = None  # serves the queue; started by a request
        self._waiter: asyncio.Future[None] | None = None  # the task waiting for a request
        self._busy = False  # a request is being answered
        self._held = False  # reading paused: a request waits in the queue (pipelining)
        self._flow = WriteFlow()
        self._closing = False
        self._draining = False
        self._rejected = False
        self.closed = False
        self._last_io = 0.0
        self._head_started: float | None = None  # loop time the request head now arriving began
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        return self._busy

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        self._trusted = is_trusted(self._peer, self._settings.trusted_proxies)
        self._listener.connections.add(self)
        self._last_io = self._loop.time()
        timeout = min(self._settings.keepalive_timeout, self._settings.header_timeout)
        self._idle_timer = self._loop.call_at(self._last_io + timeout, self._on_idle_timer)

    def data_received(self, data: bytes) -> None:
        self._last_io = self._loop.time()
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_reading()
        except httptools.HttpParserError as exc:
            context = exc.__context__
            self._reject(context if isinstance(context, ProxyError) else BadRequest())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._listener.connections.discard(self)
        if self._body is not None:
            self._body.set_exception(ClientGone())
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._flow.connection_lost()

    def pause_writing(self) -> None:
        self._flow.pause()

    def resume_writing(self) -> None:
        self._flow.resume()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._head_started = self._loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._settings.max_request_line:
            raise RequestLineTooLong()

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        self._header_bytes += size
        if (
            size > self._settings.max_header_size
            or self._header_bytes > self._settings.max_headers_total
            or len(self._headers) >= MAX_HEADER_FIELDS
        ):
            raise HeadersTooLarge()
        self._headers.append((name, value))
        if len(name) in FRAMING_NAME_SIZES:
            lowered = name.lower()
            if lowered == b"content-length":
                self._length = int(value)
            elif lowered == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif lowered == b"connection":
                self._connection = True

    def on_headers_complete(self) -> None:
        assert self.transport is not None
        self._head_started = None
        parser = self._parser
        method = parser.get_method().decode("ascii")
        length, chunked = self._length, self._chunked
        if length is not None and length > self._settings.max_body_size:
            raise BodyTooLarge()
        self._body = BodyStream(self.transport) if chunked or length else None
        request = Request(
            method,
            self._url,
            parser.get_http_version(),
            self._headers,
            self._peer,
            self._trusted,
            parser.should_keep_alive(),
            self._body,
            chunked,
            self._connection,
            length=None if chunked else length,
        )
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._length = None
        self._chunked = self._connection = False
        self._enqueue(request)

    def on_body(self, body: bytes) -> None:
        stream = self._body
        if stream is None:
            return
        stream.feed(body)
        if stream.total > self._settings.max_body_size:
            raise BodyTooLarge()

    def on_message_complete(self) -> None:
        if self._body is not None:
            self._body.feed_eof()
            self._body = None

    # what the forwarder uses

    def write(self, data: bytes) -> None:
        """Queue `data` for the client: it leaves with the loop pass's other writes."""
        if self.transport is not None and not self.closed:
            self._batch.write(self.transport, data)

    async def drain(self) -> None:
        """Wait until the client reads fast enough; what the batch may hold stays bounded."""
        if self.closed:
            raise ConnectionResetError()
        self._batch.flush_over(LOW_WATER)
        await self._flow.wait()
        if self.closed:
            raise ConnectionResetError()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close_when_idle(self) -> None:
        """Drain: close now if between requests, else after the current response."""
        self._draining = True
        if not self._busy:
            self._close_transport()

    # request queue

    def _enqueue(self, item: Request | ProxyError) -> None:
        self._queue.append(item)
        if self._busy or len(self._queue) > 1:
            self._hold()
        if self._task is None:
            if not self.closed:
                self._task = self._loop.create_task(self._serve())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _serve(self) -> None:
        """The connection's one task: answers its requests in order, one at a time.

        One task per connection, not per request: waking a waiting task costs less than
        creating one.
        """
        while not self.closed:
            if not self._queue:
                self._waiter = self._loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            item = self._queue.popleft()
            if not self._queue:
                self._release()
            if isinstance(item, ProxyError):
                self.write(error_response(item, close=True))
                break
            if self._flow.paused:  # checked here: no coroutine per request when not needed
                await self._writable()
            if self.closed or not await self._answer(item):
                break
        self._close_transport()

    def _hold(self) -> None:
        """Read no further while a request waits for the one before it.

        A client that pipelines requests and never reads the answers would otherwise make the
        proxy forward them all and hold every answer; this way at most one request waits, and
        `_writable` holds back the next answer until the client reads.
        """
        if not self._held and not self._closing and self.transport is not None:
            self._held = True
            self.transport.pause_reading()

    def _release(self) -> None:
        if self._held:
            self._held = False
            if not self._closing and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    async def _writable(self) -> None:
        """Wait until the answers already written have (mostly) left for the client."""
        self._batch.flush()
        try:
            await self.drain()
        except ConnectionResetError:
            pass  # closed meanwhile: the caller finds out

    async def _answer(self, request: Request) -> bool:
        """Forward one request; True when the connection may carry the next one."""
        keep_alive = False
        self._busy = True
        try:
            keep_alive = await self._listener.forwarder.handle(request, self)
        except (ClientGone, ConnectionError):
            pass
        except Exception:
            log.exception("unexpected error forwarding a request")
        finally:
            self._busy = False
            self._last_io = self._loop.time()
        return keep_alive and not (self._closing or self._draining or self.closed)

    def _on_idle_timer(self) -> None:
        """Close a connection that carried nothing for `keepalive_timeout` seconds; answer 408 to
        a request head still incomplete `header_timeout` seconds after it began (a client
        trickling bytes keeps the connection busy, not idle).

        One timer per connection, re-armed here only: without a head in progress it fires again
        `header_timeout` from now at the latest, which is no later than any head starting
        meanwhile can time out.
        """
        self._idle_timer = None
        if self.closed:
            return
        now = self._loop.time()
        if self._busy:
            self._last_io = now
        started = self._head_started
        head_deadline = now + self._settings.header_timeout
        if started is not None:
            head_deadline = started + self._settings.header_timeout
            if now >= head_deadline and not self._closing:
                self._reject(RequestHeadTimeout())
                return
        deadline = self._last_io + self._settings.keepalive_timeout
        if now >= deadline:
            self._close_transport()
            return
        self._idle_timer = self._loop.call_at(min(deadline, head_deadline), self._on_idle_timer)

    def _reject(self, error: ProxyError) -> None:
        """The request stream is broken (bad syntax, over a limit): answer once, then close."""
        self._rejected = True
        self._stop_reading()
        if self._body is not None:
            self._body.set_exception(error)
            self._body = None
        else:
            self._enqueue(error)

    def _stop_reading(self) -> None:
        self._closing = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        self._batch.flush()  # what is queued for this client goes before the close
        self.closed = True
        if not self._rejected or not transport.can_write_eof():
            transport.close()
            return
        # Lingering close: a client still sending (a body over the limit) must get to read our
        # answer; closing with unread input would reset the connection and lose it.
        transport.write_eof()
        transport.resume_reading()
        self._loop.call_later(LINGER_SECONDS, transport.close)


class Listener:
    """The public port's connections: what the server drains on SIGTERM."""

    def __init__(self, forwarder: Forwarder, batch: WriteBatch | None = None) -> None:
        self.forwarder = forwarder
        self.batch = batch or WriteBatch()
        self.connections: set[ClientConnection] = set()

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)

    def close_idle(self) -> None:
        for conn in list(self.connections):
            conn.close_when_idle()

    async def wait_idle(self, timeout: float) -> bool:
        """True when every connection closed within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self.connections
