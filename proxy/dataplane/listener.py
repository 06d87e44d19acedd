"""The public listener: HTTP/1.1 client connections parsed with httptools, one request at a time.

This is deliberately not an aiohttp application: the public port must pass the request target and
header bytes untouched, answer over-limit requests with 414/431/413, and be fast; a plain asyncio
protocol gives all three. Process state is still never global: a `Listener` gets its `Forwarder`
(which holds the `ProxyState`) from `proxy.server`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import cast

import httptools

from proxy.dataplane.forward import Forwarder
from proxy.dataplane.heads import interim_head
from proxy.dataplane.reading import Limits, RequestReading
from proxy.errors import (
    BadRequest,
    ProxyError,
    RequestHeadTimeout,
    error_response,
)
from proxy.http.batch import WriteBatch
from proxy.http.exchange import Headers
from proxy.http.messages import Request
from proxy.http.scan import readers
from proxy.http.streams import LOW_WATER, WriteFlow, new_future
from proxy.http.tunnel import End
from proxy.settings import Settings, is_trusted

LINGER_SECONDS = 2.0
# SO_LINGER on, timeout 0: close() sends RST, so a client knows the body it got is incomplete.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)
log = logging.getLogger("strangler.listener")


class ClientGone(Exception):
    """The client closed its connection before its request body was complete."""


class ClientConnection(RequestReading, asyncio.Protocol):
    """One client connection: its requests parsed (`RequestReading`), queued and answered one at a
    time by the forwarder, its timers, its close."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._batch = listener.batch
        self._settings: Settings = listener.forwarder.state.settings
        self._limits = listener.limits
        self._read_head = listener.read_head
        self._loop = asyncio.get_running_loop()
        self._now = self._loop.time  # bound once: compiled, no call by name per read
        self.transport: asyncio.Transport | None = None
        self._peer = ""
        self._trusted = False
        self._init_reading()
        # Two at most (`_hold`): a list, whose calls compile to direct ones (a deque's: by name).
        self._queue: list[Request | ProxyError] = []
        self._task: asyncio.Task[None] | None = None  # serves the queue; started by a request
        self._waiter: asyncio.Future[None] | None = None  # the task waiting for a request
        self._busy = False  # a request is being answered
        self._held = False  # reading paused: a request waits in the queue (pipelining)
        self._flow = WriteFlow()
        self._closing = False
        self._draining = False
        self._eof = False  # the client shut down its sending side
        self._rejected = False
        self.closed = False
        self._last_io = 0.0
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
        self._last_io = self._now()
        if self._closing:
            if self._switching is not None:  # not parsed: a tunnel's, or HTTP again (_upgrade)
                self._switching += data
                self._stop_reading()
            return
        started = self._head_started
        begun = self._heads_begun
        between = started is None and self._body is None
        if between and self._reusable and self._read_whole(data):
            return
        messages = self._messages
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0] :])
        except httptools.HttpParserInvalidMethodError:
            # At the start of `data` only: where a later request in it began is not known.
            if not (between and messages == self._messages and self._extension_method(data)):
                self._reject(BadRequest())
        except httptools.HttpParserError as exc:
            context = exc.__context__
            self._reject(context if isinstance(context, ProxyError) else BadRequest())
        else:
            # Still the same head (a count, not the start time's identity: compiled, a float
            # attribute is boxed anew on each read; and uvloop's clock ticks in milliseconds).
            same = self._heads_begun == begun and self._head_started is not None
            if started is not None and same:
                self._count_head_bytes(len(data))

    def eof_received(self) -> bool:
        """A half-close: a request already received is still answered, then the connection
        closes (HTTP/1.0 tools and some health checks send a request and shut down writing)."""
        self._eof = True
        if self._body is None and self._head_started is None and (self._busy or self._queue):
            return True  # keep the sending side open for the answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._cancel_body_timer()
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
        """Reset the connection: what the client got is known to be incomplete, and a close
        it could mistake for the end of a close-delimited body (HTTP/1.0) must not happen."""
        self.closed = True
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
                except OSError:
                    pass  # already gone
            self.transport.abort()

    def interim(self, status: int, reason: bytes, headers: Headers) -> None:
        """A backend's interim (1xx) response, as `interim_head` words it for the client."""
        head = interim_head(status, reason, headers)
        if head is not None:
            self.write(head)

    def detach(self) -> End:
        """After a 101: the connection, for a tunnel, with the bytes that followed the upgrade
        request's head; what is queued for the client (the 101 head) is written first."""
        if self.closed or self.transport is None:
            raise ConnectionResetError()
        self._batch.flush()
        buffered, self._switching = bytes(self._switching or b""), None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        return End(self.transport, buffered, self._flow.paused)

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
        creating one. Each request is forwarded right here, not in a coroutine of its own: one
        coroutine frame less to make, resume and free per request.
        """
        while not self.closed:
            if not self._queue:
                self._waiter = new_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            item = self._queue.pop(0)
            if not self._queue:
                self._release()
            if isinstance(item, ProxyError):
                self.write(error_response(item, close=True))
                break
            if self._flow.paused:  # checked here: no coroutine per request when not needed
                await self._writable()
            if self.closed:
                break
            keep_alive = False
            self._busy = True
            try:
                keep_alive = await self._listener.forwarder.handle(item, self)
            except (ClientGone, ConnectionError):
                pass
            except Exception:
                log.exception("unexpected error forwarding a request")
            finally:
                self._busy = False
                self._last_io = self._now()
            if not self._carries_on(item, keep_alive):
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

    def _carries_on(self, request: Request, keep_alive: bool) -> bool:
        """After a request is answered: whether the connection may carry the next one."""
        if request.upgrade is not None and keep_alive:
            self._resume_http()  # the backend answered an upgrade without switching
        closing = self._closing and self._switching is None  # not an upgrade queued after this
        return keep_alive and not (closing or self._draining or self.closed or self._eof)

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
        self.limits = Limits(forwarder.state.settings)
        self.read_head = readers()[0]  # None: httptools reads every request head
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
