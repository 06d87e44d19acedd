"""One keep-alive HTTP/1.1 connection to a backend (`UpstreamConnection`, an asyncio protocol),
carrying one exchange at a time: it writes a request head (and streams its body), parses the
response with httptools and feeds its body to a `BodyStream` (a sized body's later reads go there
without the parser, which would copy every chunk once more). A first read that holds a whole
response head is read in one call where `proxy.http.scan`'s fast path runs (`_read_whole`).

The response head answers the future `exchange()` returns; interim (1xx) responses go to the
request's `interim` sink, if any; a 101 is the final answer of a request that asked to upgrade
(the connection then leaves its pool: `detach`). Read and send timeouts, the response head cap and
the backend's `Keep-Alive: timeout` are enforced here. What fails becomes a `ProxyError` through
`proxy.http.errors.translated`. Which connection to use is the pool's business (`proxy.http.pool`).
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol, cast

import httptools

from proxy.errors import (
    ProxyError,
    UpstreamHeadTooLarge,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamReset,
    UpstreamSendTimeout,
)
from proxy.http.batch import WriteBatch
from proxy.http.errors import translated
from proxy.http.exchange import (
    FRAMING_NAME_SIZES,
    NO_BODY_STATUS,
    ExchangeState,
    Response,
    UpstreamRequest,
    content_length,
    keep_alive_timeout,
)
from proxy.http.messages import lowered, value_tokens
from proxy.http.scan import ResponseHead, ResponseReader
from proxy.http.streams import BodyStream, WriteFlow, new_future
from proxy.http.tunnel import End

# A pooled connection is not reused in the last second of the idle time a backend announced
# (`Keep-Alive: timeout=5`: 4 s): a request sent as the backend closes it would fail, and one
# with a body cannot be retried.
REUSE_MARGIN = 1.0


class Owner(Protocol):
    """The pool a connection belongs to (`proxy.http.pool.Pool`), as the connection uses it."""

    batch: WriteBatch
    max_head: int  # response head bytes (status line and headers) allowed
    read_head: ResponseReader | None  # proxy.http.scan's fast path, where it runs

    def forget(self, conn: UpstreamConnection) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a backend, carrying one exchange at a time."""

    def __init__(self, pool: Owner) -> None:
        self._pool = pool
        self._batch, self._max_head = pool.batch, pool.max_head  # compiled: no Protocol lookups
        self._read_head = pool.read_head
        self._loop = asyncio.get_running_loop()
        self._now = self._loop.time  # bound once: compiled, no call by name per read
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = 0
        self._parser: httptools.HttpResponseParser | None = None
        self._exchange: ExchangeState | None = None
        self._upload: asyncio.Task[None] | None = None
        self._flow = WriteFlow()
        self._last_io = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._switched_bytes = b""  # what followed a 101 head: the new protocol's first bytes
        self.reuse_until = math.inf  # loop time after which the backend may close it while idle

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.left and not exchange.complete:
            self._body_received(exchange, data)
            return
        parser = self._parser
        if parser is None or exchange is None or exchange.complete:
            self.close()
            return
        if self.received == 0 and self._read_head is not None and exchange.method != "HEAD":
            head = self._read_head(data, self._max_head)
            if head is not None:  # a whole head, read in one call: the usual first read
                self._read_whole(exchange, head, data)
                return
        self.received += len(data)
        self._last_io = self._now()
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:  # after a 101 that on_headers_complete took
            self._switched(data[exc.args[0] :])
            return
        except Exception as exc:  # no context manager here: this runs for every response
            self._fail(translated(exc))
            self.close()  # also after a complete response: bytes after it break the connection
            return
        if exchange.response is None and self.received > self._max_head:
            self._fail(UpstreamHeadTooLarge())
            self.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self._pool.forget(self)
        exchange = self._exchange
        if exchange is not None and not exchange.complete:
            if exchange.until_eof and exchange.response is not None and exc is None:
                self._finish()
            else:  # an OSError: reset, or a TLS alert (a client certificate refused, say)
                self._fail(translated(exc) if isinstance(exc, OSError) else UpstreamReset())
        self._flow.connection_lost()

    def pause_writing(self) -> None:
        self._flow.pause()

    def resume_writing(self) -> None:
        self._flow.resume()

    # httptools callbacks

    def on_message_begin(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.complete:
            raise UpstreamProtocolError()  # bytes after a complete response: never pooled

    def on_status(self, reason: bytes) -> None:
        assert self._exchange is not None
        self._exchange.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.response is not None:
            return  # a trailer: never promoted into the head the client gets
        exchange.headers.append((name, value))
        if FRAMING_NAME_SIZES >> len(name) & 1:
            low = lowered(name)
            if low == b"content-length":
                exchange.sized = True
                exchange.length = content_length(value)  # llhttp has checked it; only one
            elif low == b"transfer-encoding":
                # Only `chunked`, once (nginx too): another coding would stay on a body the
                # proxy re-frames without saying so.
                if exchange.chunked or value.strip().lower() != b"chunked":
                    raise UpstreamProtocolError()
                exchange.chunked = True
            elif low == b"connection":
                if tokens := value_tokens(value):  # usually none: `keep-alive`, `close`
                    exchange.connection |= tokens
            elif low == b"keep-alive":
                exchange.idle_timeout = keep_alive_timeout(value)

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        assert exchange is not None and self._parser is not None
        status = self._parser.get_status_code()
        if (status < 200 or status > 599) and exchange.interim_head(status, self._parser):
            return
        has_body = exchange.method != "HEAD" and status not in NO_BODY_STATUS
        exchange.until_eof = has_body and not exchange.sized and not exchange.chunked
        if has_body and exchange.sized and not exchange.chunked:
            exchange.left = exchange.length
        assert self.transport is not None
        response = Response(
            status,
            exchange.reason,
            exchange.headers,
            BodyStream(self.transport),
            has_body,
            self._parser.should_keep_alive(),
            exchange.sized,
            exchange.chunked,
            exchange.connection,
        )
        exchange.response = response
        if not exchange.head.done():
            exchange.head.set_result(response)
        if not has_body:
            self._finish()

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.response is not None:
            if exchange.complete:
                raise UpstreamProtocolError()  # a body after a HEAD answer's head
            if exchange.left:  # a sized body: what its first reads leave to the bypass
                exchange.left -= len(body)
            exchange.response.body.feed(body)

    def on_message_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.response is not None:
            self._finish()

    def _read_whole(self, exchange: ExchangeState, head: ResponseHead, data: bytes) -> None:
        """What the callbacks above make of a response that `proxy.http.scan` read whole."""
        assert self.transport is not None
        self.received, self._last_io = len(data), self._now()
        response = exchange.read_whole(head, BodyStream(self.transport), data)
        if not exchange.head.done():
            exchange.head.set_result(response)
        if not exchange.left:
            self._finish()

    def _body_received(self, exchange: ExchangeState, data: bytes) -> None:
        """More of a sized body whose head the parser has read: fed as it is, without the parser
        (which would copy every chunk). The parser, left in the middle of that body, is dropped
        at its end; the next response gets a new one."""
        assert exchange.response is not None
        self.received += len(data)
        self._last_io = self._now()
        left = exchange.left
        if len(data) < left:
            exchange.left = left - len(data)
            exchange.response.body.feed(data)
            return
        exchange.left = 0
        self._parser = None
        exchange.response.body.feed(data if len(data) == left else data[:left])
        self._finish()
        if len(data) > left:
            self.close()  # bytes after a complete response break the connection

    # the exchange

    def exchange(self, request: UpstreamRequest, read_timeout: float) -> asyncio.Future[Response]:
        """Send `request`; the future is its response once the head is in (not a coroutine)."""
        assert self.transport is not None
        head: asyncio.Future[Response] = new_future()
        self._exchange = ExchangeState(
            request.method, read_timeout, head, request.interim, request.upgrade
        )
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self.received = 0
        self._batch.write(self.transport, request.head)
        if request.body is None:
            self._request_sent()
        else:
            self._upload = self._loop.create_task(self._send_body(request.body, request.chunked))
        return head

    @property
    def upload(self) -> asyncio.Task[None] | None:
        return self._upload

    @property
    def reusable(self) -> bool:
        exchange = self._exchange
        return (
            not self.closed
            and exchange is not None
            and exchange.complete
            and exchange.sent
            and exchange.response is not None
            and exchange.response.keep_alive
        )

    def reset(self) -> None:
        """Forget the finished exchange: the connection is idle again. The read timer is left
        to run out (it re-arms only while an exchange waits): cheaper than cancelling it."""
        exchange = self._exchange
        if exchange is not None:
            if exchange.method == "HEAD":
                self._parser = None
            if exchange.idle_timeout is not None:
                self.reuse_until = self._loop.time() + exchange.idle_timeout - REUSE_MARGIN
        self._exchange = None

    @property
    def reusable_now(self) -> bool:
        """Open, and idle for less than the backend said it keeps idle connections."""
        return not self.closed and (
            self.reuse_until == math.inf or self._loop.time() < self.reuse_until
        )

    def close(self) -> None:
        if self._upload is not None and not self._upload.done():
            self._upload.cancel()
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self._cancel_timer()
        self._pool.forget(self)

    def detach(self) -> End:
        """After a 101: the connection leaves its pool for good (a tunnel takes it over), with
        the bytes that followed the 101 head."""
        assert self.transport is not None
        self._cancel_timer()
        self._pool.forget(self)
        self._exchange = None
        end = End(self.transport, self._switched_bytes, self._flow.paused)
        self._switched_bytes = b""
        return end

    def _switched(self, rest: bytes) -> None:
        """The 101 head is in: nothing more is read until the tunnel takes over (`detach`)."""
        assert self.transport is not None and self._exchange is not None
        self._switched_bytes = rest
        self.transport.pause_reading()
        if self._exchange.response is not None:
            self._exchange.response.keep_alive = False  # never back to the pool

    async def _send_body(self, body: BodyStream, chunked: bool) -> None:
        assert self.transport is not None
        self._batch.flush()  # the head first; the body is written directly
        try:
            while chunk := await body.read():
                if self.closed:
                    return
                if chunked:
                    self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    self.transport.write(chunk)
                if self._flow.paused:
                    await self._writable()
            if chunked and not self.closed:
                self.transport.write(b"0\r\n\r\n")
            self._request_sent()
        except ProxyError as exc:
            self._fail(exc)
            self.close()

    async def _writable(self) -> None:
        """Wait for the backend to read on: at most `read_timeout` seconds between two writes
        (nginx's proxy_send_timeout), else 504 and the connection is closed."""
        assert self._exchange is not None
        try:
            async with asyncio.timeout(self._exchange.read_timeout):
                await self._flow.wait()
        except TimeoutError:
            raise UpstreamSendTimeout() from None

    def _request_sent(self) -> None:
        exchange = self._exchange
        if exchange is None:
            return
        exchange.sent = True
        self._last_io = self._now()
        if not exchange.complete and self._timer is None:
            self._timer = self._loop.call_at(self._last_io + exchange.read_timeout, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        exchange = self._exchange
        if exchange is None or exchange.complete or self.closed:
            return
        now = self._loop.time()
        response = exchange.response
        if response is not None and response.body.paused:
            self._last_io = now
        deadline = self._last_io + exchange.read_timeout
        if now < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._fail(UpstreamReadTimeout())
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self) -> None:
        exchange = self._exchange
        assert exchange is not None and exchange.response is not None
        exchange.complete = True
        exchange.response.body.feed_eof()

    def _fail(self, exc: ProxyError) -> None:
        exchange = self._exchange
        if exchange is None or exchange.complete:
            return
        exchange.complete = True
        if not exchange.head.done():
            exchange.head.set_exception(exc)
        elif exchange.response is not None:
            exchange.response.body.set_exception(exc)
        if self.transport is not None and not self.closed:
            self.transport.abort()
