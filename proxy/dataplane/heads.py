"""The heads the forwarder writes: the upstream request head, the client's response head, a
relayed interim (1xx) head and a 101's head. Pure functions over parsed messages.

The request target goes upstream byte for byte; headers keep their order and repetitions; only
hop-by-hop headers (`proxy.http.messages.HOP_BY_HOP`, plus every header named in `Connection`)
are removed in both directions. The proxy adds X-Forwarded-For/-Proto/-Host (a client's own
values, and its RFC 7239 `Forwarded`, are kept only when it connects from
`Settings.trusted_proxies`), `Host` only for an HTTP/1.0 client that sent none, and `Connection`
on its own responses when it closes or keeps alive an HTTP/1.0 connection. Every request carries
an `X-Request-ID` upstream (the client's own, else a new one) and back to the client (added when
the backend did not echo it); the tester override header (`X-Strangler-Force`), the dry-run
headers (`X-Strangler-Shadow`, `X-Strangler-Signature`: only the proxy's own shadow copies carry
them), `SCRIPT_NAME`, `PATH_INFO` and `HTTP2-Settings` never leave the proxy.
"""

from __future__ import annotations

from binascii import hexlify
from collections.abc import Callable
from random import getrandbits
from typing import Final

from proxy import HOT_PATH_MODE
from proxy.http.exchange import Headers, Response, name_sizes
from proxy.http.messages import (
    HOP_BY_HOP,
    NOTHING,
    Request,
    connection_tokens,
    end_to_end,
)
from proxy.migration.canary import FORCE_HEADER
from proxy.routing.model import Backend
from proxy.speedups import accelerator

# gunicorn takes SCRIPT_NAME from a header sent from 127.0.0.1 (its default forwarded_allow_ips)
# and cuts it off PATH_INFO: `/x/bookings` with `SCRIPT_NAME: /x` is served as bookings, whatever
# `x` routed to. PATH_INFO is in gunicorn's forwarder_headers too. Neither ever goes upstream.
WSGI_PATH_HEADERS: Final = frozenset({b"script_name", b"path_info"})
# An h2c upgrade's settings: the upgrade is refused, its header goes nowhere (proxy.http.tunnel).
H2C_SETTINGS: Final = b"http2-settings"
# A client's own dry-run headers (proxy.dryrun): only the proxy's shadow copies carry them.
DRY_RUN_HEADERS: Final = frozenset({b"x-strangler-shadow", b"x-strangler-signature"})
DROPPED: Final = HOP_BY_HOP | {FORCE_HEADER} | WSGI_PATH_HEADERS | {H2C_SETTINGS} | DRY_RUN_HEADERS
# A client's own forwarding headers; kept only from `Settings.trusted_proxies`.
FORWARDED: Final = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}
)
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
STATUS_LINE_STARTS: Final = {status: b"HTTP/1.1 %d " % status for status in range(100, 600)}
# The sizes of the names each head checks, a bit per size: a name of another size is written as
# it came, without the lower() call and set lookups (two or three per header, on every request).
# Bits, not a set of sizes (`proxy.http.exchange.name_sizes`).
REQUEST_NAME_SIZES: Final = name_sizes(DROPPED | FORWARDED | {b"host", b"x-request-id"})
RESPONSE_NAME_SIZES: Final = name_sizes(HOP_BY_HOP | {b"x-request-id"})
RequestHead = Callable[[Request, Backend], bytes]
ResponseHead = Callable[[Response, Request, bool], tuple[bytes, bool, bool]]
# A head is a list of whole lines, each made with `b"%b: %b\r\n" %`: compiled, bytes `%` with
# only `%b` is one allocation and a copy of each part, which costs less than joining the four
# parts of every line.


def writers() -> tuple[RequestHead, ResponseHead]:
    """`request_head` and `response_head`: these, or their C twins (proxy/dataplane/_heads.pyx,
    the same bytes in a third of the time) where the compiled hot path runs."""
    twin = accelerator("proxy.dataplane._heads", HOT_PATH_MODE)
    if twin is None:
        return request_head, response_head
    return twin.request_head, twin.response_head


def new_request_id() -> bytes:
    """32 hex digits. Not a secret, so no system call per request: `random` is seeded from
    os.urandom when each (worker) interpreter starts. (hexlify: a third of `b"%032x" %`'s cost;
    `"big"` spelled out: compiled, only then is `to_bytes` a direct call.)"""
    return hexlify(getrandbits(128).to_bytes(16, "big"))


def request_head(request: Request, backend: Backend) -> bytes:
    """The upstream request head: target untouched, headers filtered, always HTTP/1.1.

    Kept in one pass over the headers: this runs for every request. Sets `request.request_id`
    to the client's X-Request-ID, or to a new id (once) that the head then carries.
    """
    named = connection_tokens(request.headers) if request.connection else NOTHING
    trusted = request.trusted
    parts = [b"%b %b HTTP/1.1\r\n" % (request.method.encode(), request.target)]
    host = forwarded_host = proto = None
    given_id = False
    chain: list[bytes] = []
    for name, value in request.headers:
        if not named and not REQUEST_NAME_SIZES >> len(name) & 1:
            parts.append(b"%b: %b\r\n" % (name, value))
            continue
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
                    parts.append(b"%b: %b\r\n" % (name, value))  # RFC 7239: kept as it came
                else:
                    forwarded_host = value
            continue
        if lowered == b"host" and host is None:
            host = value
        elif lowered == b"x-request-id" and not given_id:
            given_id = True
            request.request_id = value
        parts.append(b"%b: %b\r\n" % (name, value))
    if not given_id:
        request.request_id = request.request_id or new_request_id()
        parts.append(b"X-Request-ID: %b\r\n" % request.request_id)
    if host is None:
        host = f"{backend.host}:{backend.port}".encode()
        parts.insert(1, b"Host: %b\r\n" % host)  # first, after the request line
    if request.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if request.upgrade is not None:
        parts.append(b"Upgrade: %b\r\nConnection: upgrade\r\n" % request.upgrade)
    peer = request.peer.encode()
    parts.append(
        b"X-Forwarded-For: %b\r\nX-Forwarded-Proto: %b\r\nX-Forwarded-Host: %b\r\n\r\n"
        % (b", ".join((*chain, peer)) if chain else peer, proto or b"http", forwarded_host or host)
    )
    return b"".join(parts)


def response_head(response: Response, request: Request, draining: bool) -> tuple[bytes, bool, bool]:
    """The client response head, whether its body is re-chunked, and whether the connection
    stays open (one pass over the headers).

    A head read whole (`Response.lines`) has no hop-by-hop line but `Connection`, and that names
    no other (`proxy.http.scan`): its lines are copied around that one."""
    named = response.connection
    start = STATUS_LINE_STARTS.get(response.status) or b"HTTP/1.1 %d " % response.status
    parts = [b"%b%b\r\n" % (start, response.reason)]
    lines = response.lines
    echoed = response.echoed
    if lines:
        parts += (lines[: response.hop_start], lines[response.hop_end :])
    else:
        for name, value in response.headers:
            if named or RESPONSE_NAME_SIZES >> len(name) & 1:
                lowered = name.lower()
                if lowered in HOP_BY_HOP or lowered in named:
                    continue
                if lowered == b"x-request-id":
                    echoed = True
            parts.append(b"%b: %b\r\n" % (name, value))
    if not echoed and request.request_id:
        parts.append(b"X-Request-ID: %b\r\n" % request.request_id)
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


def expects_continue(request: Request) -> bool:
    """Whether the proxy sends `100 Continue`: never to an HTTP/1.0 client (RFC 9110 10.1.1)."""
    return request.version == "1.1" and any(
        name.lower() == b"expect" and value.lower() == b"100-continue"
        for name, value in request.headers
    )
