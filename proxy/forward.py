"""The hot path: forward one client request to its backend and stream the response back.

Clients must not notice the proxy. The request target goes upstream byte for byte; headers keep
their order and repetitions; only hop-by-hop headers (RFC 9110 section 7.6.1, plus every header
named in `Connection`) are removed in both directions, and bodies are re-framed, never decoded.
The proxy adds X-Forwarded-For/-Proto/-Host (a client's own values are kept only when it connects
from `Settings.trusted_proxies`), `Host` only for an HTTP/1.0 client that sent none, and
`Connection` on its own responses when it closes or keeps alive an HTTP/1.0 connection.

Every request carries an `X-Request-ID` upstream (the client's own, else a new one) and back to
the client (added when the backend did not echo it); the tester override header
(`X-Strangler-Force`) never leaves the proxy. After `table.match`, `proxy.canary` chooses the
backend (canary share, tester override) and `proxy.fallback` may replay the request on the
route's fallback backend.
"""

from __future__ import annotations

import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.accesslog import AccessLog
from proxy.canary import CANARY, FORCE_HEADER, FORCED, ROUTED, BackendChooser
from proxy.errors import Draining, ProxyError, error_response
from proxy.fallback import Replay, complete_body, discard, plan_replay
from proxy.routes import Backend, Decision, RouteTable
from proxy.settings import is_trusted as is_trusted
from proxy.shadow import Tee
from proxy.state import ProxyState
from proxy.streams import BodyStream
from proxy.upstream import Exchange, Headers, Response, UpstreamRequest, Upstreams

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
DROPPED = HOP_BY_HOP | {FORCE_HEADER}
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NOTHING: frozenset[bytes] = frozenset()
CONNECTION_SIZE = len(b"connection")
STATUS_LINE_STARTS = {status: b"HTTP/1.1 %d " % status for status in range(100, 600)}
# The Connection values nearly every peer sends, parsed once.
COMMON_CONNECTION = {value: frozenset({value}) for value in (b"keep-alive", b"close")}


@dataclass(slots=True)
class Request:
    """A client request whose head has been parsed; the body (if any) is still arriving."""

    method: str
    target: bytes
    version: str
    headers: Headers
    peer: str
    trusted: bool
    keep_alive: bool
    body: BodyStream | None = None
    chunked: bool = False
    connection: bool = False  # a Connection header is present
    request_id: bytes = b""  # set by request_head: the client's X-Request-ID or a new one
    length: int | None = None  # the declared Content-Length of the body, if not chunked

    @property
    def path(self) -> str:
        """The raw target's path, undecoded: `/bookings/%7e?q=1` -> `/bookings/%7e`."""
        return self.target.partition(b"?")[0].decode("latin-1")


class Client(Protocol):
    """The client connection as the forwarder sees it."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def abort(self) -> None: ...


def new_request_id() -> bytes:
    """32 hex digits. Not a secret, so no system call per request: `random` is seeded from
    os.urandom when each (worker) interpreter starts."""
    return b"%032x" % random.getrandbits(128)


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """Header names listed in `Connection` fields: `Connection: close, X-Foo` -> {close, x-foo}."""
    tokens = NOTHING
    for name, value in headers:
        if len(name) == CONNECTION_SIZE and name.lower() == b"connection":
            lowered = value.lower()
            found = COMMON_CONNECTION.get(lowered)
            if found is None:
                found = frozenset(token.strip() for token in lowered.split(b","))
            tokens = found if not tokens else tokens | found
    return tokens


def request_head(request: Request, backend: Backend) -> bytes:
    """The upstream request head: target untouched, headers filtered, always HTTP/1.1.

    Kept in one pass over the headers: this runs for every request. Sets `request.request_id`
    to the client's X-Request-ID, or to a new id (once) that the head then carries.
    """
    named = connection_tokens(request.headers) if request.connection else NOTHING
    trusted = request.trusted
    parts = [request.method.encode(), b" ", request.target, b" HTTP/1.1\r\n"]
    host = forwarded_host = proto = None
    given_id = False
    chain: list[bytes] = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in DROPPED or lowered in named:
            continue
        if lowered in FORWARDED:
            if trusted:
                if lowered == b"x-forwarded-for":
                    chain.append(value)
                elif lowered == b"x-forwarded-proto":
                    proto = value
                else:
                    forwarded_host = value
            continue
        if lowered == b"host" and host is None:
            host = value
        elif lowered == b"x-request-id" and not given_id:
            given_id = True
            request.request_id = value
        parts += (name, b": ", value, b"\r\n")
    if not given_id:
        request.request_id = request.request_id or new_request_id()
        parts += (b"X-Request-ID: ", request.request_id, b"\r\n")
    if host is None:
        host = f"{backend.host}:{backend.port}".encode()
        parts[4:4] = (b"Host: ", host, b"\r\n")  # first, after the request line
    if request.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    chain.append(request.peer.encode())
    parts += (
        b"X-Forwarded-For: ",
        b", ".join(chain),
        b"\r\nX-Forwarded-Proto: ",
        proto or b"http",
        b"\r\nX-Forwarded-Host: ",
        forwarded_host or host,
        b"\r\n\r\n",
    )
    return b"".join(parts)


def response_head(response: Response, request: Request, draining: bool) -> tuple[bytes, bool, bool]:
    """The client response head, whether its body is re-chunked, and whether the connection
    stays open (one pass over the headers)."""
    named = connection_tokens(response.headers) if response.connection else NOTHING
    parts = [STATUS_LINE_STARTS.get(response.status) or b"HTTP/1.1 %d " % response.status]
    parts += (response.reason, b"\r\n")
    echoed = False
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in named:
            continue
        if lowered == b"x-request-id":
            echoed = True
        parts += (name, b": ", value, b"\r\n")
    if not echoed and request.request_id:
        parts += (b"X-Request-ID: ", request.request_id, b"\r\n")
    sized = response.sized and b"content-length" not in named
    http11 = request.version == "1.1"
    chunked = http11 and not sized and (response.chunked or response.has_body)
    keep_alive = request.keep_alive and not draining and (sized or chunked or not response.has_body)
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive and http11:
        parts.append(b"Connection: close\r\n")
    elif keep_alive and not http11:
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    return b"".join(parts), chunked and response.has_body, keep_alive


@dataclass(slots=True)
class Outcome:
    """How a request was answered: for metrics, the access log and observers."""

    backend: Backend  # the backend whose answer the client got (or was to get)
    via: str = ROUTED  # canary.ROUTED, CANARY (the canary share) or FORCED (a tester)
    status: int = 0  # 0: no answer was sent
    keep_alive: bool = False
    bytes_out: int = 0  # response body bytes sent to the client
    fallback_from: str | None = None  # the backend whose answer a fallback replaced
    shadow: bool = False  # a copy may go to a shadow backend


class Forwarder:
    """Forwards requests with the process's state and connection pools."""

    def __init__(
        self, state: ProxyState, upstreams: Upstreams, access_log: AccessLog | None = None
    ) -> None:
        self.state = state
        self.upstreams = upstreams
        self.chooser = BackendChooser(state.settings)
        self.access_log = access_log or AccessLog()

    async def handle(self, request: Request, client: Client) -> bool:
        """Answer `request` on `client`; True when the connection may carry another request."""
        state = self.state
        table = state.table
        started = time.perf_counter()
        decision = table.match(request.method, request.path)
        backend, via = self.chooser.choose(table, decision, request)
        outcome = Outcome(backend, via)
        metrics = state.metrics
        gauge = metrics.in_flight(backend.name)
        route = decision.route
        tee = None
        if route is not None and route.shadow is not None and state.shadows is not None:
            tee = state.shadows.tee(table, decision.resource, route.shadow, request, request_head)
            outcome.shadow = tee is not None
        gauge.inc()
        try:
            await self._forward(request, client, table, decision, outcome, tee)
            return outcome.keep_alive
        finally:
            gauge.dec()
            if outcome.status:
                elapsed = time.perf_counter() - started
                metrics.request_done(
                    decision.resource, outcome.backend.name, request.method, outcome.status, elapsed
                )
                state.guards.observe(
                    decision.resource, outcome.backend.name, outcome.status, elapsed
                )
                if state.settings.access_log:
                    self.log(request, decision.resource, outcome, elapsed)

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
            if request.body is not None and _expects_continue(request.headers):
                client.write(CONTINUE)
            route = None if outcome.via == FORCED else decision.route  # a tester sees the answer
            cap = self.state.settings.fallback_body_cap
            replay = plan_replay(route, table, outcome.backend, request.body, cap, request.length)
            body = request.body if replay is None else replay.body
            exchange = await self._send(request, outcome.backend, body)
            if replay is not None and replay.wanted(exchange.response.status):
                exchange = await self._fall_back(request, decision, exchange, replay, outcome)
        except ProxyError as exc:
            outcome.status = self._fail(request, client, outcome.backend, exc)
            return
        outcome.status = exchange.response.status
        try:
            head, chunked, keep_alive = response_head(
                exchange.response, request, self.state.draining
            )
            outcome.bytes_out = await _stream(head, exchange.response.body, client, chunked, tee)
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
            tee.finish(exchange.response, outcome.backend.name)
        outcome.keep_alive = keep_alive and _fully_read(request)

    def _send(
        self, request: Request, backend: Backend, body: BodyStream | None
    ) -> Coroutine[Any, Any, Exchange]:
        """`Upstreams.send` for `request` (not a coroutine itself: one frame less to resume)."""
        upstream_request = UpstreamRequest(
            request.method,
            request_head(request, backend),
            body,
            request.chunked,
            request.method in IDEMPOTENT,
        )
        return self.upstreams.send(backend, upstream_request)

    async def _fall_back(
        self,
        request: Request,
        decision: Decision,
        exchange: Exchange,
        replay: Replay,
        outcome: Outcome,
    ) -> Exchange:
        """The fallback backend's exchange instead of `exchange`, if the request is replayable."""
        first, code = outcome.backend.name, exchange.response.status
        to = replay.backend.name
        completing = not replay.replayable and replay.completable
        if completing:
            await complete_body(replay, exchange)  # drops the first answer
        replayable = replay.replayable
        self.state.debt.record(
            decision.resource,
            request.method,
            request.path,
            code,
            f"{first} -> {to}",
            replayed=replayable,
        )
        if not replayable:
            return exchange
        if not completing:
            await discard(exchange)
        self.state.metrics.fallback(decision.resource, first, to, code)
        outcome.backend = replay.backend
        outcome.fallback_from = first
        return await self._send(request, replay.backend, replay.body_again())

    def _fail(self, request: Request, client: Client, backend: Backend, exc: ProxyError) -> int:
        if exc.kind is not None:
            self.state.metrics.upstream_error(backend.name, exc.kind)
        request.request_id = request.request_id or new_request_id()
        response = error_response(exc, close=True)
        client.write(response.replace(b"\r\n", b"\r\nX-Request-ID: %b\r\n" % request.request_id, 1))
        return exc.status

    def log(self, request: Request, resource: str, outcome: Outcome, seconds: float) -> None:
        """The request's access-log line."""
        self.access_log.request(
            request.request_id.decode("latin-1"),
            request.method,
            request.path,
            resource,
            outcome.backend.name,
            outcome.status,
            seconds,
            0 if request.body is None else request.body.total,
            outcome.bytes_out,
            outcome.via == CANARY,
            outcome.via == FORCED,
            outcome.fallback_from,
            outcome.shadow,
        )


async def _stream(
    head: bytes, body: BodyStream, client: Client, chunked: bool, tee: Tee | None = None
) -> int:
    """Write `head` and the body; what has already arrived goes out with the head in one write.

    A `tee` (shadowed requests only) sees every body chunk as it goes out. Returns the number of
    body bytes sent (without chunk framing).
    """
    first = body.read_buffered()
    sent = len(first)
    if tee is not None:
        tee.feed(first)
    if chunked and first:
        first = b"%x\r\n%b\r\n" % (len(first), first)
    if body.at_eof:
        client.write(head + first + (b"0\r\n\r\n" if chunked else b""))
        return sent
    client.write(head + first)
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


def _expects_continue(headers: Headers) -> bool:
    return any(
        name.lower() == b"expect" and value.lower() == b"100-continue" for name, value in headers
    )
