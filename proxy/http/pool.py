"""Pooled keep-alive connections to the backends: the proxy's one forwarding interface.

`Upstreams.send(backend, request)` writes a request head (and streams its body), waits for the
response head and returns an `Exchange` whose body the caller streams, then releases. Connections
are pooled per backend address, scheme and TLS options, at most `Backend.max_connections` at a time
(full -> `PoolFull`); an https backend's are TLS from the connect on (`proxy.http.tls`).
A pooled connection the backend closed while idle is noticed and dropped before use; if the
backend closes one just as a request is written, an idempotent request without a body (which
cannot have been processed: not one byte came back) is sent again once on a fresh connection.
One connection's exchange is `proxy.http.connection`; the request and response it carries,
`proxy.http.exchange`.
"""

from __future__ import annotations

import asyncio

from proxy.errors import PoolFull, UpstreamReset
from proxy.http.batch import WriteBatch
from proxy.http.connection import UpstreamConnection
from proxy.http.errors import translate_errors
from proxy.http.exchange import Response, UpstreamRequest
from proxy.http.scan import readers
from proxy.http.tls import TlsContexts
from proxy.http.tunnel import End
from proxy.routing.model import Backend, TlsOptions


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
        self.read_head = readers()[1]  # None: httptools reads every response head
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
        """The connection of a 101 answer, for `proxy.http.tunnel.splice`; never pooled again."""
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
