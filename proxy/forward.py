"""The hot path: forward one client request to its backend and stream the response back.

Clients must not notice the proxy. The request target goes upstream byte for byte; headers keep
their order and repetitions; only hop-by-hop headers (RFC 9110 section 7.6.1, plus every header
named in `Connection`) are removed in both directions, and bodies are re-framed, never decoded.
The proxy adds X-Forwarded-For/-Proto/-Host (a client's own values are kept only when it connects
from `Settings.trusted_proxies`), `Host` only for an HTTP/1.0 client that sent none, and
`Connection` on its own responses when it closes or keeps alive an HTTP/1.0 connection.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from proxy.errors import Draining, ProxyError, error_response
from proxy.routes import Backend
from proxy.settings import IPNetwork
from proxy.shadow import Tee
from proxy.state import ProxyState
from proxy.streams import BodyStream
from proxy.upstream import Headers, Response, UpstreamRequest, Upstreams

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
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NOTHING: frozenset[bytes] = frozenset()
ACCESS_LOG = logging.getLogger("strangler.access")


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

    @property
    def path(self) -> str:
        """The raw target's path, undecoded: `/bookings/%7e?q=1` -> `/bookings/%7e`."""
        return self.target.partition(b"?")[0].decode("latin-1")


class Client(Protocol):
    """The client connection as the forwarder sees it."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def abort(self) -> None: ...


def is_trusted(peer: str, networks: tuple[IPNetwork, ...]) -> bool:
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in networks)


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """Header names listed in `Connection` fields: `Connection: close, X-Foo` -> {close, x-foo}."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    return frozenset(tokens)


def request_head(request: Request, backend: Backend) -> bytes:
    """The upstream request head: target untouched, headers filtered, always HTTP/1.1.

    Kept in one pass over the headers: this runs for every request.
    """
    named = connection_tokens(request.headers) if request.connection else NOTHING
    trusted = request.trusted
    parts = [b"%b %b HTTP/1.1\r\n" % (request.method.encode(), request.target)]
    host = forwarded_host = proto = None
    chain: list[bytes] = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in named:
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
        parts.append(b"%b: %b\r\n" % (name, value))
    if host is None:
        host = f"{backend.host}:{backend.port}".encode()
        parts.insert(1, b"Host: %b\r\n" % host)
    if request.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    chain.append(request.peer.encode())
    parts.append(
        b"X-Forwarded-For: %b\r\nX-Forwarded-Proto: %b\r\nX-Forwarded-Host: %b\r\n\r\n"
        % (b", ".join(chain), proto or b"http", forwarded_host or host)
    )
    return b"".join(parts)


@dataclass(slots=True)
class Framing:
    head: bytes
    chunked: bool
    keep_alive: bool


def response_head(response: Response, request: Request, draining: bool) -> Framing:
    """The client response head and how its body is framed (one pass over the headers)."""
    named = connection_tokens(response.headers) if response.connection else NOTHING
    parts = [b"HTTP/1.1 %d %b\r\n" % (response.status, response.reason)]
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in named:
            continue
        parts.append(b"%b: %b\r\n" % (name, value))
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
    return Framing(b"".join(parts), chunked and response.has_body, keep_alive)


class Forwarder:
    """Forwards requests with the process's state and connection pools."""

    def __init__(self, state: ProxyState, upstreams: Upstreams) -> None:
        self.state = state
        self.upstreams = upstreams

    async def handle(self, request: Request, client: Client) -> bool:
        """Answer `request` on `client`; True when the connection may carry another request."""
        state = self.state
        table = state.table
        started = time.perf_counter()
        decision = table.match(request.method, request.path)
        backend = decision.backend
        metrics = state.metrics
        gauge = metrics.in_flight(backend.name)
        route = decision.route
        tee = None
        if route is not None and route.shadow is not None and state.shadows is not None:
            tee = state.shadows.tee(table, decision.resource, route.shadow, request, request_head)
        gauge.inc()
        status = 0
        try:
            status, keep_alive = await self._forward(request, client, backend, tee)
            return keep_alive
        finally:
            gauge.dec()
            if status:
                elapsed = time.perf_counter() - started
                metrics.request_done(
                    decision.resource, backend.name, request.method, status, elapsed
                )
                if state.settings.access_log:
                    access_log(request, decision.resource, backend.name, status, elapsed)

    async def _forward(
        self, request: Request, client: Client, backend: Backend, tee: Tee | None = None
    ) -> tuple[int, bool]:
        try:
            if self.state.draining:
                raise Draining()
            if request.body is not None and _expects_continue(request.headers):
                client.write(CONTINUE)
            upstream_request = UpstreamRequest(
                request.method,
                request_head(request, backend),
                request.body,
                request.chunked,
                request.method in IDEMPOTENT,
            )
            exchange = await self.upstreams.send(backend, upstream_request)
        except ProxyError as exc:
            return self._fail(request, client, backend, exc), False
        try:
            framing = response_head(exchange.response, request, self.state.draining)
            await _stream(framing.head, exchange.response.body, client, framing.chunked, tee)
        except ProxyError as exc:
            exchange.abort()
            if exc.kind is not None:
                self.state.metrics.upstream_error(backend.name, exc.kind)
            client.abort()
            return exchange.response.status, False
        except BaseException:
            exchange.abort()
            raise
        exchange.release()
        if tee is not None:
            tee.finish(exchange.response, backend.name)
        return exchange.response.status, framing.keep_alive and _fully_read(request)

    def _fail(self, request: Request, client: Client, backend: Backend, exc: ProxyError) -> int:
        if exc.kind is not None:
            self.state.metrics.upstream_error(backend.name, exc.kind)
        client.write(error_response(exc, close=True))
        return exc.status


def access_log(request: Request, resource: str, backend: str, status: int, seconds: float) -> None:
    """One JSON line per request on the `strangler.access` logger (fuller line: a later issue)."""
    line = {
        "method": request.method,
        "resource": resource,
        "backend": backend,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }
    ACCESS_LOG.info(json.dumps(line))


async def _stream(
    head: bytes, body: BodyStream, client: Client, chunked: bool, tee: Tee | None = None
) -> None:
    """Write `head` and the body; what has already arrived goes out with the head in one write.

    A `tee` (shadowed requests only) sees every body chunk as it goes out.
    """
    first = body.read_buffered()
    if tee is not None:
        tee.feed(first)
    if chunked and first:
        first = b"%x\r\n%b\r\n" % (len(first), first)
    if body.at_eof:
        client.write(head + first + (b"0\r\n\r\n" if chunked else b""))
        return
    client.write(head + first)
    await client.drain()
    while chunk := await body.read():
        if tee is not None:
            tee.feed(chunk)
        client.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        await client.drain()
    if chunked:
        client.write(b"0\r\n\r\n")


def _fully_read(request: Request) -> bool:
    return request.body is None or request.body.at_eof


def _expects_continue(headers: Headers) -> bool:
    return any(
        name.lower() == b"expect" and value.lower() == b"100-continue" for name, value in headers
    )
