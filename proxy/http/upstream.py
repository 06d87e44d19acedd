"""Pooled keep-alive HTTP/1.1 connections to the backends: the proxy's one forwarding interface.

`Upstreams.send(backend, request)` writes a request head (and streams its body), waits for the
response head and returns an `Exchange` whose body the caller streams, then releases. Connections
are pooled per backend address, scheme and TLS options, at most `Backend.max_connections` at a time
(full -> `PoolFull`); an https backend's are TLS from the connect on (one `ssl.SSLContext` per
distinct `TlsOptions`: nothing TLS-specific happens per request).
A pooled connection the backend closed while idle is noticed and dropped before use; if the
backend closes one just as a request is written, an idempotent request without a body (which
cannot have been processed: not one byte came back) is sent again once on a fresh connection.
Interim (1xx) responses go to the request's `interim` sink, if any; a 101 is the final answer
of a request that asked to upgrade (its connection then leaves the pool: `Exchange.detach`).

Every foreign failure (OSError, ssl.SSLError, TimeoutError, parser error) becomes a `ProxyError`
in exactly one place: `translated`.
"""

from __future__ import annotations

import asyncio
import math
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

from proxy.errors import (
    PoolFull,
    ProxyError,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamHeadTooLarge,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamReset,
    UpstreamSendTimeout,
    UpstreamTlsError,
)
from proxy.http.batch import WriteBatch
from proxy.http.streams import BodyStream, WriteFlow
from proxy.http.tunnel import End
from proxy.routing.routes import Backend, TlsOptions

Headers = list[tuple[bytes, bytes]]
NO_BODY_STATUS = frozenset({101, 204, 304})
FRAMING_NAME_SIZES = frozenset(
    {len(b"connection"), len(b"content-length"), len(b"transfer-encoding"), len(b"keep-alive")}
)
# A pooled connection is not reused in the last second of the idle time a backend announced
# (`Keep-Alive: timeout=5`: 4 s): a request sent as the backend closes it would fail, and one
# with a body cannot be retried.
REUSE_MARGIN = 1.0


def translated(exc: Exception, *, connecting: bool = False) -> ProxyError:
    """The one place where a foreign exception becomes the proxy's 502/504 error.

    Anything that is not a timeout, a parser error or an OSError is not ours to hide: re-raised.
    """
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamConnectTimeout() if connecting else UpstreamReadTimeout()
    if isinstance(exc, httptools.HttpParserError):
        context = exc.__context__
        return context if isinstance(context, ProxyError) else UpstreamProtocolError()
    if isinstance(exc, ssl.SSLError):  # an OSError too: tested first
        return UpstreamTlsError()
    if isinstance(exc, OSError):
        return UpstreamConnectError() if connecting else UpstreamReset()
    raise exc


@contextmanager
def translate_errors(*, connecting: bool = False) -> Iterator[None]:
    """`translated` as a context manager: foreign exceptions leave it as `ProxyError`s."""
    try:
        yield
    except ProxyError:
        raise
    except Exception as exc:
        raise translated(exc, connecting=connecting) from exc


@dataclass(slots=True)
class UpstreamRequest:
    """A request ready for the wire: `head` ends with the blank line; the body is re-framed."""

    method: str
    head: bytes
    body: BodyStream | None = None
    chunked: bool = False
    idempotent: bool = False
    upgrade: bool = False  # asks to switch protocols: a 101 is its final answer (proxy.tunnel)
    interim: InterimSink | None = None  # gets the backend's 1xx other than 101; None: dropped


class InterimSink(Protocol):
    """Where a backend's interim (1xx) responses go while the final one is awaited."""

    def interim(self, status: int, reason: bytes, headers: Headers) -> None: ...


@dataclass(slots=True)
class Response:
    status: int
    reason: bytes
    headers: Headers
    body: BodyStream
    has_body: bool
    keep_alive: bool
    sized: bool = False  # Content-Length present
    chunked: bool = False  # Transfer-Encoding: chunked
    connection: bool = False  # a Connection header present


@dataclass(slots=True)
class _Exchange:
    method: str
    read_timeout: float
    head: asyncio.Future[Response]
    headers: Headers
    interim: InterimSink | None = None
    upgrade: bool = False
    reason: bytes = b""
    response: Response | None = None
    sized: bool = False
    chunked: bool = False
    connection: bool = False
    until_eof: bool = False
    sent: bool = False
    complete: bool = False
    idle_timeout: float | None = None  # from the backend's `Keep-Alive: timeout=N`


def keep_alive_timeout(value: bytes) -> float | None:
    """The idle timeout a `Keep-Alive` header announces, in seconds (None if it names none).

    >>> keep_alive_timeout(b"timeout=5, max=1000"), keep_alive_timeout(b"max=3")
    (5.0, None)
    """
    for parameter in value.split(b","):
        name, _, number = parameter.strip().partition(b"=")
        if name.strip().lower() == b"timeout":
            try:
                seconds = float(number.strip(b' "'))
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a backend, carrying one exchange at a time."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = 0
        self._parser: httptools.HttpResponseParser | None = None
        self._exchange: _Exchange | None = None
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
        parser = self._parser
        if parser is None or self._exchange is None or self._exchange.complete:
            self.close()
            return
        self.received += len(data)
        self._last_io = self._loop.time()
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:  # after a 101 that on_headers_complete took
            self._switched(data[exc.args[0] :])
            return
        except Exception as exc:  # no context manager here: this runs for every response
            self._fail(translated(exc))
            self.close()  # also after a complete response: bytes after it break the connection
            return
        if self._exchange.response is None and self.received > self._pool.max_head:
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
        size = len(name)
        if size in FRAMING_NAME_SIZES:
            lowered = name.lower()
            if lowered == b"content-length":
                exchange.sized = True
            elif lowered == b"transfer-encoding":
                # Only `chunked`, once (nginx too): another coding would stay on a body the
                # proxy re-frames without saying so.
                if exchange.chunked or value.strip().lower() != b"chunked":
                    raise UpstreamProtocolError()
                exchange.chunked = True
            elif lowered == b"connection":
                exchange.connection = True
            elif lowered == b"keep-alive":
                exchange.idle_timeout = keep_alive_timeout(value)

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        assert exchange is not None and self._parser is not None
        status = self._parser.get_status_code()
        if (status < 200 or status > 599) and self._interim(exchange, status):
            return
        has_body = exchange.method != "HEAD" and status not in NO_BODY_STATUS
        exchange.until_eof = has_body and not exchange.sized and not exchange.chunked
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

    def _interim(self, exchange: _Exchange, status: int) -> bool:
        """A head whose status is not 200-599: True for an interim (1xx) response, handed to
        `exchange.interim` if there is one (parsing goes on to the final response); False for a
        101 the request asked for, its final answer. Any other status (101 unasked, or outside
        100-599) is not an answer the proxy can pass on: 502.
        """
        assert self._parser is not None
        if status < 100 or status > 599:
            raise UpstreamProtocolError()
        if status == 101:
            if exchange.upgrade and self._parser.should_upgrade():  # Upgrade, Connection: upgrade
                return False
            raise UpstreamProtocolError()
        if exchange.interim is not None:
            exchange.interim.interim(status, exchange.reason, exchange.headers)
        exchange.reason, exchange.headers = b"", []
        exchange.sized = exchange.chunked = exchange.connection = False
        return True

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.response is not None:
            if exchange.complete:
                raise UpstreamProtocolError()  # a body after a HEAD answer's head
            exchange.response.body.feed(body)

    def on_message_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.response is not None:
            self._finish()

    # the exchange

    def exchange(self, request: UpstreamRequest, read_timeout: float) -> asyncio.Future[Response]:
        """Send `request`; the future is the response once its head has arrived.

        A plain method returning the future, not a coroutine: one frame less to resume per
        request.
        """
        assert self.transport is not None
        head: asyncio.Future[Response] = self._loop.create_future()
        self._exchange = _Exchange(
            request.method, read_timeout, head, [], request.interim, request.upgrade
        )
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self.received = 0
        self._pool.batch.write(self.transport, request.head)
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
        """Forget the finished exchange: the connection is idle again.

        The read timer is left to run out (it re-arms only while an exchange waits): cheaper than
        cancelling and re-creating it for every request.
        """
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
        self._pool.batch.flush()  # the head first; the body is written directly
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
        self._last_io = self._loop.time()
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


class TlsContexts:
    """One `ssl.SSLContext` per distinct `TlsOptions`, built at the first connection needing it
    and again only when one of its files has changed (a renewed certificate): a new connection
    costs a `stat` per file, never a rebuild."""

    def __init__(self) -> None:
        self._built: dict[TlsOptions, tuple[tuple[int, ...], ssl.SSLContext]] = {}

    def get(self, options: TlsOptions | None) -> ssl.SSLContext | None:
        """None (plain HTTP) for None. Raises OSError when a file can no longer be loaded."""
        if options is None:
            return None
        stamp = file_stamp(options)
        built = self._built.get(options)
        if built is None or built[0] != stamp:
            built = self._built[options] = (stamp, options.context())
        return built[1]


def file_stamp(options: TlsOptions) -> tuple[int, ...]:
    """Which version of its files `options` names: inode and modification time of each."""
    stamp: list[int] = []
    for path in (options.ca_file, options.client_cert, options.client_key):
        if path is not None:
            status = os.stat(path)
            stamp += (status.st_ino, status.st_mtime_ns)
    return tuple(stamp)


class Pool:
    """Keep-alive connections to one backend address; idle ones are reused newest first."""

    def __init__(
        self,
        host: str,
        port: int,
        batch: WriteBatch,
        max_head: int = 64 * 1024,
        *,
        tls: TlsOptions | None = None,
        contexts: TlsContexts | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.batch = batch
        self.tls = tls  # None: plain HTTP
        self.server_name = None if tls is None else tls.server_name or host  # SNI, verified
        self._contexts = contexts or TlsContexts()
        self.max_head = max_head  # response head bytes (status line and headers) allowed
        self.idle: list[UpstreamConnection] = []
        self.open: set[UpstreamConnection] = set()
        self.connecting = 0

    @property
    def size(self) -> int:
        return len(self.open) + self.connecting

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used idle connection the backend has not closed (nor is about to,
        by its `Keep-Alive: timeout`), if any."""
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable_now:
                return conn
            conn.close()
        return None

    async def connect(self, backend: Backend) -> UpstreamConnection:
        """A new connection. Raises PoolFull or a connect error."""
        if self.size >= backend.max_connections:
            raise PoolFull()
        return await self._connect(backend)

    def release(self, conn: UpstreamConnection) -> None:
        if conn.reusable:
            conn.reset()
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        self.open.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        for conn in list(self.open):
            conn.close()

    async def _connect(self, backend: Backend) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        self.connecting += 1
        try:
            with translate_errors(connecting=True):
                context = self._contexts.get(self.tls)
                async with asyncio.timeout(backend.connect_timeout):  # the handshake included
                    _, conn = await loop.create_connection(
                        lambda: UpstreamConnection(self),
                        self.host,
                        self.port,
                        ssl=context,
                        server_hostname=self.server_name,
                    )
        finally:
            self.connecting -= 1
        self.open.add(conn)
        return conn


class Exchange:
    """A response being received; `release()` (or `abort()`, or after a 101 `detach()`) exactly
    once when done with it."""

    __slots__ = ("response", "_pool", "_conn")

    def __init__(self, response: Response, pool: Pool, conn: UpstreamConnection) -> None:
        self.response = response
        self._pool = pool
        self._conn = conn

    def release(self) -> None:
        self._pool.release(self._conn)

    def abort(self) -> None:
        self._conn.close()

    def detach(self) -> End:
        """The connection of a 101 answer, for `proxy.tunnel.splice`; never pooled again."""
        return self._conn.detach()

    @property
    def upload(self) -> asyncio.Task[None] | None:
        """The task still sending the request body, if there is one."""
        return self._conn.upload


class Upstreams:
    """Connection pools by backend address, scheme and TLS options. One per process, closed at
    shutdown."""

    def __init__(self, batch: WriteBatch | None = None, max_head: int = 64 * 1024) -> None:
        self._pools: dict[str, Pool] = {}  # by `Backend.pool_key`: scheme, address, TLS options
        self._contexts = TlsContexts()
        self._batch = batch or WriteBatch()
        self._max_head = max_head

    def pool(self, backend: Backend) -> Pool:
        pool = self._pools.get(backend.pool_key)
        if pool is None:
            pool = self._pools[backend.pool_key] = Pool(
                backend.host,
                backend.port,
                self._batch,
                self._max_head,
                tls=backend.tls,
                contexts=self._contexts,
            )
        return pool

    async def send(self, backend: Backend, request: UpstreamRequest) -> Exchange:
        """Send `request` to `backend`; the response head is in, its body still to stream."""
        pool = self.pool(backend)
        replayable = request.idempotent and request.body is None
        retried = False
        while True:
            conn = None if retried else pool.take_idle()
            reused = conn is not None
            if conn is None:
                conn = await pool.connect(backend)
            try:
                response = await conn.exchange(request, backend.read_timeout)
            except UpstreamReset:
                conn.close()
                if reused and replayable and conn.received == 0:
                    retried = True
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return Exchange(response, pool, conn)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
