"""The hot path: forward one client request to its backend and stream the response back.

Clients must not notice the proxy. The request target goes upstream byte for byte; headers keep
their order and repetitions; only hop-by-hop headers (RFC 9110 section 7.6.1, plus every header
named in `Connection`) are removed in both directions, and bodies are re-framed, never decoded.
The proxy adds X-Forwarded-For/-Proto/-Host (a client's own values, and its RFC 7239 `Forwarded`,
are kept only when it connects from `Settings.trusted_proxies`), `Host` only for an HTTP/1.0
client that sent none, and `Connection` on its own responses when it closes or keeps alive an
HTTP/1.0 connection.

Every request carries an `X-Request-ID` upstream (the client's own, else a new one) and back to
the client (added when the backend did not echo it); the tester override header
(`X-Strangler-Force`) never leaves the proxy, nor do `SCRIPT_NAME` and `PATH_INFO` headers (they
would move the path gunicorn resolves away from the one routed on). `table.match` routes on the
target's `routing_key`; then `proxy.canary` chooses the backend (canary share, tester override)
and `proxy.fallback` may replay the request on the route's fallback backend.

Interim (1xx) responses: the proxy answers `Expect: 100-continue` itself, at once, and only to an
HTTP/1.1 client (RFC 9110 section 10.1.1), so a backend's own `100 Continue` is never relayed (it
would be the client's second); every other 1xx (`102`, `103 Early Hints`, ...) goes to an HTTP/1.1
client as soon as it arrives, hop-by-hop headers removed, and never to an HTTP/1.0 one. A backend
status outside 100-599 is a 502. A request asking to switch protocols (`Upgrade`) becomes a
tunnel on a 101 (`proxy.tunnel`); `h2c` never does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.errors import BadRequest, Draining, ProxyError, error_response
from proxy.http.streams import BodyStream
from proxy.http.tunnel import End, splice
from proxy.http.upstream import Exchange, Headers, Response, UpstreamRequest, Upstreams
from proxy.migration.canary import CANARY, FORCE_HEADER, FORCED, ROUTED, BackendChooser
from proxy.migration.fallback import Replay, complete_body, discard, plan_replay
from proxy.migration.shadow import Tee
from proxy.observe.accesslog import AccessLog
from proxy.routing.routes import Backend, Decision, RouteTable
from proxy.settings import is_trusted as is_trusted
from proxy.state import ProxyState

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
# gunicorn takes SCRIPT_NAME from a header sent from 127.0.0.1 (its default forwarded_allow_ips)
# and cuts it off PATH_INFO: `/x/bookings` with `SCRIPT_NAME: /x` is served as bookings, whatever
# `x` routed to. PATH_INFO is in gunicorn's forwarder_headers too. Neither ever goes upstream.
WSGI_PATH_HEADERS = frozenset({b"script_name", b"path_info"})
# An h2c upgrade's settings: the upgrade is refused, its header goes nowhere (proxy.tunnel).
H2C_SETTINGS = b"http2-settings"
DROPPED = HOP_BY_HOP | {FORCE_HEADER} | WSGI_PATH_HEADERS | {H2C_SETTINGS}
# A client's own forwarding headers; kept only from `Settings.trusted_proxies`.
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"})
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
    upgrade: bytes | None = None  # the `Upgrade` to forward: a tunnel on a 101 (proxy.tunnel)

    @property
    def path(self) -> str:
        """The raw target's path, undecoded: `/bookings/%7e?q=1` -> `/bookings/%7e`."""
        return self.target.partition(b"?")[0].decode("latin-1")


class Client(Protocol):
    """The client connection as the forwarder sees it."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def abort(self) -> None: ...
    # A backend's 1xx: written as `interim_head` words it.
    def interim(self, status: int, reason: bytes, headers: Headers) -> None: ...
    # After a 101: the connection, for a tunnel (ConnectionResetError if it is gone).
    def detach(self) -> End: ...


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
                elif lowered == b"forwarded":
                    parts += (name, b": ", value, b"\r\n")  # RFC 7239: kept as it came
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
    if request.upgrade is not None:
        parts += (b"Upgrade: ", request.upgrade, b"\r\nConnection: upgrade\r\n")
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


def end_to_end(headers: Headers, named: frozenset[bytes] = NOTHING) -> list[bytes]:
    """Header lines without the hop-by-hop ones (and those `named` in `Connection`)."""
    lines: list[bytes] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered not in HOP_BY_HOP and lowered not in named:
            lines += (name, b": ", value, b"\r\n")
    return lines


def interim_head(status: int, reason: bytes, headers: Headers) -> bytes | None:
    """A backend's interim response as an HTTP/1.1 client gets it; None for `100 Continue`,
    which the proxy sends itself (see the module docstring).

    >>> interim_head(103, b"Early Hints", [(b"Link", b"</a.css>"), (b"Keep-Alive", b"timeout=5")])
    b'HTTP/1.1 103 Early Hints\\r\\nLink: </a.css>\\r\\n\\r\\n'
    """
    if status == 100:
        return None
    lines = end_to_end(headers, connection_tokens(headers))
    return b"".join((STATUS_LINE_STARTS[status], reason, b"\r\n", *lines, b"\r\n"))


def switching_head(response: Response, request: Request) -> bytes:
    """The client's 101 head: the backend's end-to-end headers, then its `Upgrade` and
    `Connection: upgrade` (both hop-by-hop, so set again here) and the request id."""
    headers = response.headers
    lines = end_to_end(headers, connection_tokens(headers))
    protocols = [value for name, value in headers if name.lower() == b"upgrade"]
    if request.request_id and not any(name.lower() == b"x-request-id" for name, _ in headers):
        lines += (b"X-Request-ID: ", request.request_id, b"\r\n")
    lines += (b"Upgrade: ", b", ".join(protocols), b"\r\nConnection: upgrade\r\n\r\n")
    return b"".join((b"HTTP/1.1 101 ", response.reason, b"\r\n", *lines))


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
    switched: float = 0.0  # perf_counter() when a 101 went out: the request's duration ends there


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
        if (
            route is not None
            and route.shadow is not None
            and state.shadows is not None
            and request.upgrade is None  # a tunnel is never shadowed
        ):
            tee = state.shadows.tee(table, decision.resource, route.shadow, request, request_head)
            outcome.shadow = tee is not None
        gauge.inc()
        try:
            await self._forward(request, client, table, decision, outcome, tee)
            return outcome.keep_alive
        finally:
            gauge.dec()
            if outcome.status:
                elapsed = (outcome.switched or time.perf_counter()) - started
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
            if decision.refused:  # a target routing_key cannot read (llhttp refuses them first)
                raise BadRequest()
            if request.body is not None and _expects_continue(request):
                client.write(CONTINUE)
            route = None if outcome.via == FORCED else decision.route  # a tester sees the answer
            cap = self.state.settings.fallback_body_cap
            replay = plan_replay(route, table, outcome.backend, request.body, cap, request.length)
            body = request.body if replay is None else replay.body
            exchange = await self._send(request, outcome.backend, body, client)
            if replay is not None and replay.wanted(exchange.response.status):
                exchange = await self._fall_back(
                    request, client, decision, exchange, replay, outcome
                )
        except ProxyError as exc:
            outcome.status = self._fail(request, client, outcome.backend, exc)
            return
        outcome.status = exchange.response.status
        if outcome.status == 101:  # only ever the answer to an upgrade request
            await self._switch(request, client, exchange, outcome)
            return
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
        self, request: Request, backend: Backend, body: BodyStream | None, client: Client
    ) -> Coroutine[Any, Any, Exchange]:
        """`Upstreams.send` for `request` (not a coroutine itself: one frame less to resume)."""
        upstream_request = UpstreamRequest(
            request.method,
            request_head(request, backend),
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
        the tunnel ends (`proxy.tunnel`). Counted as a 101 then, timed to the 101 only."""
        try:
            client.write(switching_head(exchange.response, request))
            downstream = client.detach()
        except BaseException:
            exchange.abort()
            raise
        outcome.switched = time.perf_counter()
        tunnels = self.state.metrics.tunnel(outcome.backend.name)
        tunnels.inc()
        try:
            outcome.bytes_out = await splice(
                downstream, exchange.detach(), self.state.settings.tunnel_idle_timeout
            )
        finally:
            tunnels.dec()

    async def _fall_back(
        self,
        request: Request,
        client: Client,
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
        return await self._send(request, replay.backend, replay.body_again(), client)

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


def _expects_continue(request: Request) -> bool:
    """Whether the proxy sends `100 Continue`: never to an HTTP/1.0 client (RFC 9110 10.1.1)."""
    return request.version == "1.1" and any(
        name.lower() == b"expect" and value.lower() == b"100-continue"
        for name, value in request.headers
    )
