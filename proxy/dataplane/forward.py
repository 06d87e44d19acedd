"""The request path: one client request through its steps, and the response streamed back.

`Forwarder.handle` runs a request through the same steps in a fixed order:

1. route: `table.match` on the target's routing key (`proxy.routing`);
2. choose the backend: tester override, pinned client, canary share (`proxy.migration.canary`);
3. tee a copy for the shadow backend, when the route shadows (`proxy.migration.shadow`);
4. send: the upstream head (`proxy.dataplane.heads`) and body through the pools (`proxy.http`);
5. replay on the fallback backend when the first answer's status asks for it
   (`proxy.migration.fallback`);

then streams the answer (or becomes a tunnel on a 101, `proxy.http.tunnel`) and, at the end,
tells each of its observers how the request went (`proxy.dataplane.observers`: metrics, guard
windows, the access log). A new per-request feature is a new step or a new observer.

Interim (1xx) responses: the proxy answers `Expect: 100-continue` itself, at once, and only to an
HTTP/1.1 client (RFC 9110 section 10.1.1), so a backend's own `100 Continue` is never relayed (it
would be the client's second); every other 1xx (`102`, `103 Early Hints`, ...) goes to an HTTP/1.1
client as soon as it arrives, hop-by-hop headers removed, and never to an HTTP/1.0 one. A backend
status outside 100-599 is a 502. A request asking to switch protocols (`Upgrade`) becomes a
tunnel on a 101; `h2c` never does.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from proxy.dataplane.heads import (
    CONTINUE,
    expects_continue,
    new_request_id,
    switching_head,
    writers,
)
from proxy.dataplane.observers import Observer, Outcome, standard_observers
from proxy.errors import BadRequest, Draining, ProxyError, error_response
from proxy.http.exchange import UpstreamRequest
from proxy.http.messages import Client, Request
from proxy.http.pool import Exchange, Upstreams
from proxy.http.streams import BodyStream
from proxy.http.tunnel import splice
from proxy.migration.canary import FORCED, BackendChooser
from proxy.migration.fallback import Fallbacks, Replay
from proxy.migration.shadow import Tee
from proxy.observe.accesslog import AccessLog
from proxy.routing.model import Backend, Decision, RouteTable
from proxy.state import ProxyState

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class Forwarder:
    """Forwards requests with the process's state and connection pools."""

    def __init__(
        self,
        state: ProxyState,
        upstreams: Upstreams,
        access_log: AccessLog | None = None,
        observers: tuple[Observer, ...] | None = None,
    ) -> None:
        self.state = state
        self.counts = state.metrics.counts  # the process's for its lifetime; read per request
        self.upstreams = upstreams
        self.chooser = BackendChooser(state.settings, metrics=state.metrics)
        self.fallbacks = Fallbacks(state.settings.fallback_body_cap, state.debt, state.metrics)
        self.access_log = access_log or AccessLog()
        if observers is None:
            log = self.access_log if state.settings.access_log else None
            observers = standard_observers(state.metrics, state.guards, log)
        self.observers = observers
        self.request_head, self.response_head = writers()  # heads.py's, or their C twins
        self._clock = time.perf_counter  # bound once: compiled, `time.perf_counter` is a lookup

    async def handle(self, request: Request, client: Client) -> bool:
        """Answer `request` on `client`; True when the connection may carry another request."""
        state = self.state
        table = state.table
        started = self._clock()
        decision = table.match(request.method, request.path)
        backend, via = self.chooser.choose(table, decision, request)
        outcome = Outcome(backend, via)
        gauge = self.counts.in_flight(backend.name)
        route = decision.route
        tee = None
        if (
            route is not None
            and route.shadow is not None
            and state.shadows is not None
            and request.upgrade is None  # a tunnel is never shadowed
        ):
            tee = state.shadows.tee(
                table, decision.resource, route.shadow, request, self.request_head
            )
            outcome.shadow = tee is not None
        gauge.inc()
        try:
            await self._forward(request, client, table, decision, outcome, tee)
            return outcome.keep_alive
        finally:
            gauge.dec()
            if outcome.status:
                elapsed = (outcome.switched or self._clock()) - started
                for observer in self.observers:
                    observer.request_done(request, decision.resource, outcome, elapsed)

    async def _forward(
        self,
        request: Request,
        client: Client,
        table: RouteTable,
        decision: Decision,
        outcome: Outcome,
        tee: Tee | None = None,
    ) -> None:
        try:
            if self.state.draining:
                raise Draining()
            if decision.refused:  # a target routing_key cannot read (llhttp refuses them first)
                raise BadRequest()
            if request.body is not None and expects_continue(request):
                client.write(CONTINUE)
            route = None if outcome.via == FORCED else decision.route  # a tester sees the answer
            source = request.body if tee is None else tee.keep(request.body)
            replay = self.fallbacks.plan(route, table, outcome.backend, source, request.length)
            body = source if replay is None else replay.body
            exchange = await self._send(request, outcome.backend, body, client)
            if replay is not None and replay.wanted(exchange.response.status):
                exchange = await self._replay(request, client, decision, exchange, replay, outcome)
        except ProxyError as exc:
            outcome.status = self._fail(request, client, outcome.backend, exc)
            return
        outcome.status = exchange.response.status
        if outcome.status == 101:  # only ever the answer to an upgrade request
            await self._switch(request, client, exchange, outcome)
            return
        try:
            head, chunked, keep_alive = self.response_head(
                exchange.response, request, self.state.draining
            )
            body = exchange.response.body
            sent, whole = _write_whole(head, body, client, chunked, tee)
            if not whole:
                sent = await _stream(sent, body, client, chunked, tee)
            outcome.bytes_out = sent
        except ProxyError as exc:
            exchange.abort()
            if exc.kind is not None:
                self.state.metrics.upstream_error(outcome.backend.name, exc.kind)
            client.abort()
            return
        except BaseException:
            exchange.abort()
            raise
        exchange.release()
        if tee is not None:
            tee.finish(exchange.response, outcome.backend)
        outcome.keep_alive = keep_alive and _fully_read(request)

    def _send(
        self, request: Request, backend: Backend, body: BodyStream | None, client: Client
    ) -> Coroutine[Any, Any, Exchange]:
        """`Upstreams.send` for `request` (not a coroutine itself: one frame less to resume)."""
        upstream_request = UpstreamRequest(
            request.method,
            self.request_head(request, backend),
            body,
            request.chunked,
            request.method in IDEMPOTENT,
            request.upgrade is not None,
            client if request.version == "1.1" else None,  # 1xx: never to an HTTP/1.0 client
        )
        return self.upstreams.send(backend, upstream_request)

    async def _switch(
        self, request: Request, client: Client, exchange: Exchange, outcome: Outcome
    ) -> None:
        """The backend switched protocols: relay its 101, then splice the two connections until
        the tunnel ends (`proxy.http.tunnel`). Counted as a 101 then, timed to the 101 only."""
        try:
            client.write(switching_head(exchange.response, request))
            downstream = client.detach()
        except BaseException:
            exchange.abort()
            raise
        outcome.switched = self._clock()
        tunnels = self.state.metrics.tunnel(outcome.backend.name)
        tunnels.inc()
        try:
            outcome.bytes_out = await splice(
                downstream, exchange.detach(), self.state.settings.tunnel_idle_timeout
            )
        finally:
            tunnels.dec()

    async def _replay(
        self,
        request: Request,
        client: Client,
        decision: Decision,
        exchange: Exchange,
        replay: Replay,
        outcome: Outcome,
    ) -> Exchange:
        """The fallback step (`Fallbacks.take_over`): the exchange whose answer the client gets."""
        shape = (decision.resource, request.method, request.path)
        if not await self.fallbacks.take_over(replay, exchange, outcome.backend, shape):
            return exchange
        outcome.fallback_from = outcome.backend.name
        outcome.backend = replay.backend
        return await self._send(request, replay.backend, replay.body_again(), client)

    def _fail(self, request: Request, client: Client, backend: Backend, exc: ProxyError) -> int:
        if exc.kind is not None:
            self.state.metrics.upstream_error(backend.name, exc.kind)
        request.request_id = request.request_id or new_request_id()
        response = error_response(exc, close=True)
        client.write(response.replace(b"\r\n", b"\r\nX-Request-ID: %b\r\n" % request.request_id, 1))
        return exc.status


def _write_whole(
    head: bytes, body: BodyStream, client: Client, chunked: bool, tee: Tee | None = None
) -> tuple[int, bool]:
    """Write `head` and what has already arrived of the body, in one write: the number of body
    bytes sent (without chunk framing), and whether that was the whole body (if not, `_stream`
    sends the rest). Most answers arrive whole: no coroutine for them.

    A `tee` (shadowed requests only) sees every body chunk as it goes out.
    """
    first = body.read_buffered()
    sent = len(first)
    if tee is not None:
        tee.feed(first)
    if chunked and first:
        first = b"%x\r\n%b\r\n" % (len(first), first)
    if body.at_eof:
        client.write(head + first + (b"0\r\n\r\n" if chunked else b""))
        return sent, True
    client.write(head + first)
    return sent, False


async def _stream(
    sent: int, body: BodyStream, client: Client, chunked: bool, tee: Tee | None = None
) -> int:
    """The rest of a body `_write_whole` began (`sent` bytes of it), as it arrives."""
    await client.drain()
    while chunk := await body.read():
        sent += len(chunk)
        if tee is not None:
            tee.feed(chunk)
        client.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        await client.drain()
    if chunked:
        client.write(b"0\r\n\r\n")
    return sent


def _fully_read(request: Request) -> bool:
    return request.body is None or request.body.at_eof
