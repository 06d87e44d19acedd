"""The public listener: HTTP/1.1 client connections parsed with httptools, one request at a time.

This is deliberately not an aiohttp application: the public port must pass the request target and
header bytes untouched, answer over-limit requests with 414/431/413, and be fast; a plain asyncio
protocol gives all three. Process state is still never global: a `Listener` gets its `Forwarder`
(which holds the `ProxyState`) from `proxy.server`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
from collections import deque
from typing import cast

import httptools

from proxy.dataplane.forward import Forwarder, Request, interim_head, is_trusted
from proxy.errors import (
    BadRequest,
    BodyTooLarge,
    HeadersTooLarge,
    ProxyError,
    RequestBodyTimeout,
    RequestHeadTimeout,
    RequestLineTooLong,
    UnsupportedTransferCoding,
    error_response,
)
from proxy.http.batch import WriteBatch
from proxy.http.streams import LOW_WATER, BodyStream, WriteFlow
from proxy.http.tunnel import End, upgrade_protocol
from proxy.http.upstream import FRAMING_NAME_SIZES, Headers
from proxy.settings import Settings

MAX_HEADER_FIELDS = 100
LINGER_SECONDS = 2.0
# Request header names the listener looks at while parsing: the framing ones, and `Host`.
WATCHED_NAME_SIZES = FRAMING_NAME_SIZES | {len(b"host")}
# An extension method (RFC 9110 section 9.1) that llhttp does not know, with the rest of its
# request line: `FOO /x HTTP/1.1` -> (b"FOO", b" /x HTTP/1.1...").
EXTENSION_METHOD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32})( )")
# Parsed in its place: llhttp frames a request by its headers, never by a method it knows.
STAND_IN_METHOD = b"GET"
# SO_LINGER on, timeout 0: close() sends RST, so a client knows the body it got is incomplete.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)
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
        self._hosts = 0  # Host fields in the head being parsed
        self._head_bytes = 0  # bytes received while a head is incomplete (see data_received)
        self._method: str | None = None  # an extension method parsed as STAND_IN_METHOD
        self._messages = 0  # request messages completed on this connection
        self._body: BodyStream | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0  # body bytes received when the body timer last looked
        self._queue: deque[Request | ProxyError] = deque()
        self._task: asyncio.Task[None] | None = None  # serves the queue; started by a request
        self._waiter: asyncio.Future[None] | None = None  # the task waiting for a request
        self._busy = False  # a request is being answered
        self._held = False  # reading paused: a request waits in the queue (pipelining)
        self._flow = WriteFlow()
        self._closing = False
        self._switching: bytearray | None = None  # an upgrade awaits its answer: bytes after it
        self._draining = False
        self._eof = False  # the client shut down its sending side
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
            if self._switching is not None:  # not parsed: a tunnel's, or HTTP again (_upgrade)
                self._switching += data
                self._stop_reading()
            return
        started = self._head_started
        between = started is None and self._body is None
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
            if started is not None and self._head_started is started:  # still the same head
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

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._head_started = self._loop.time()
        if self._headers:  # trailers of the previous request: never part of this head
            self._reset_head()

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
        if len(name) in WATCHED_NAME_SIZES:
            lowered = name.lower()
            if lowered == b"host":
                self._hosts += 1
            elif lowered == b"content-length":
                self._length = int(value)
            elif lowered == b"transfer-encoding":
                # Only `chunked`, once: with another coding the body's end is unknown to us.
                if self._chunked or value.strip().lower() != b"chunked":
                    raise UnsupportedTransferCoding()
                self._chunked = True
            elif lowered == b"connection":
                self._connection = True

    def on_headers_complete(self) -> None:
        assert self.transport is not None
        self._head_started = None
        self._head_bytes = 0
        parser = self._parser
        method = self._method or parser.get_method().decode("ascii")
        version = parser.get_http_version()
        if self._hosts != 1 and (self._hosts or version != "1.0"):
            raise BadRequest("Host missing or repeated")  # RFC 9112 section 3.2
        length, chunked = self._length, self._chunked
        if length is not None and length > self._settings.max_body_size:
            raise BodyTooLarge()
        self._body = BodyStream(self.transport) if chunked or length else None
        if self._body is not None:
            self._watch_body()
        request = Request(
            method,
            self._url,
            version,
            self._headers,
            self._peer,
            self._trusted,
            parser.should_keep_alive(),
            self._body,
            chunked,
            self._connection,
            length=None if chunked else length,
        )
        # _reset_head(), inline: this runs for every request
        self._url = b""
        self._headers = []
        self._header_bytes = self._hosts = 0
        self._length = self._method = None
        self._chunked = self._connection = False
        self._enqueue(request)

    def _reset_head(self) -> None:
        """Forget the head just parsed (or the trailers after it): the next head starts clean."""
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._length = None
        self._chunked = self._connection = False
        self._hosts = 0
        self._method = None

    def on_body(self, body: bytes) -> None:
        stream = self._body
        if stream is None:
            return
        stream.feed(body)
        if stream.total > self._settings.max_body_size:
            raise BodyTooLarge()

    def on_message_complete(self) -> None:
        self._messages += 1
        if self._body is not None:
            self._body.feed_eof()
            self._body = None
            self._cancel_body_timer()

    # what the parser cannot do alone

    def _extension_method(self, data: bytes) -> bool:
        """Parse a request whose method llhttp does not know (`FOO`, `QUERY` on older llhttp)
        with a stand-in method, and forward it under its own name, as nginx does.

        Only for a request that starts `data`, with its whole method in it: False otherwise.
        """
        match = EXTENSION_METHOD.match(data)
        if match is None:
            return False
        self._parser = httptools.HttpRequestParser(self)
        self._reset_head()
        self._method = match.group(1).decode("ascii")
        self._head_started = None
        self.data_received(STAND_IN_METHOD + data[match.end(1) :])
        return True

    def _count_head_bytes(self, size: int) -> None:
        """Cap a head that arrives in pieces as a whole, before httptools has buffered one
        huge field line in full (its size is only checked once the line is complete).

        Counts the reads after the one where the head began: that first read is bounded by the
        transport's read size, and counting it could count pipelined requests before it.
        """
        self._head_bytes += size
        limit = self._settings.max_request_line + self._settings.max_headers_total
        if self._head_bytes > limit and not self._closing:
            self._reject(HeadersTooLarge())

    def _watch_body(self) -> None:
        """Time out a request body whose client stops sending (nginx's client_body_timeout)."""
        self._body_seen = 0
        self._body_timer = self._loop.call_later(self._settings.body_timeout, self._on_body_timer)

    def _on_body_timer(self) -> None:
        """No body byte for `body_timeout` seconds -> 408, unless reading is paused because the
        backend is the slow side (its own send timeout covers that)."""
        self._body_timer = None
        body = self._body
        if body is None or self.closed:
            return
        if body.total == self._body_seen and not body.paused:
            self._reject(RequestBodyTimeout())
            return
        self._body_seen = body.total
        self._body_timer = self._loop.call_later(self._settings.body_timeout, self._on_body_timer)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

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

    # connection upgrades (proxy.tunnel)

    def _upgrade(self, rest: bytes) -> None:
        """llhttp stopped after a request that asks to switch protocols, or a CONNECT: `rest`
        followed its head, and nothing is parsed until the request's fate is known.

        An upgrade from an HTTP/1.1 client without a body goes to the backend with its
        `Upgrade`: on a 101 a tunnel takes the connection over (`detach`), on any other answer
        the connection goes on as HTTP/1.1 (`_resume_http`). An h2c or HTTP/1.0 one is forwarded
        without its upgrade and parsing goes on (a loop pass later). One with a body is 400: llhttp
        leaves the body unparsed. After a CONNECT the connection closes.
        """
        self._stop_reading()
        request = self._queue[-1] if self._queue else None
        if not isinstance(request, Request) or request.method == "CONNECT":
            return
        if request.body is not None:
            self._queue.pop()
            self._reject(BadRequest("Bad request: a request to switch protocols with a body."))
            return
        self._switching = bytearray(rest)
        if request.version == "1.1":
            request.upgrade = upgrade_protocol(request.headers)
        if request.upgrade is None:
            self._loop.call_soon(self._resume_http)

    def _resume_http(self) -> None:
        """No tunnel after all: parse on from the bytes after the upgrade request's head."""
        rest, self._switching = self._switching, None
        if rest is None or self.closed:
            return
        self._closing = False
        if rest:
            self.data_received(bytes(rest))
        if not (self._closing or self._held) and self.transport is not None:
            self.transport.resume_reading()

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
