"""Messages on the wire as the data plane holds them: a parsed client `Request`, the `Client`
connection the forwarder answers on, and the header rules both directions share (hop-by-hop
fields, `Connection` tokens, one field lookup).

Headers are kept as the raw `(name, value)` byte pairs they arrived as, in order and with their
repetitions; names compare case-insensitively.
"""

from __future__ import annotations

from typing import Final, Protocol

from proxy.http.exchange import Headers as Headers
from proxy.http.streams import BodyStream
from proxy.http.tunnel import End

HOP_BY_HOP: Final = frozenset(
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

NOTHING: Final[frozenset[bytes]] = frozenset()
QUESTION_MARK: Final = ord("?")
CONNECTION_SIZE: Final = len(b"connection")
# Connection options that name no header beyond the hop-by-hop ones.
OPTIONS: Final = HOP_BY_HOP | {b"close"}
# The Connection values nearly every peer sends: they add no header to drop. Keyed by their
# usual spellings too, so that one of those is found in one lookup, without lower() first.
COMMON_CONNECTION: Final = {
    spelling: NOTHING
    for value in (b"keep-alive", b"close", b"upgrade")
    for spelling in (value, value.title())
}
# The names the parsers watch (framing, Host) in the spellings peers use, with their lower case,
# the likeliest first. Compared in turn: a bytes comparison is a size check and a memcmp, where a
# dict lookup would hash the (new) name first and cost more than lower() itself.
USUAL_SPELLINGS: Final = tuple(
    (spelling, name)
    for spelling_of in (bytes.title, bytes.lower, bytes.upper)
    for name in (b"content-length", b"connection", b"host", b"transfer-encoding", b"keep-alive")
    for spelling in [spelling_of(name)]
)


class Request:
    """A client request whose head has been parsed; the body (if any) is still arriving.

    A plain class, not a dataclass: mypyc compiles this `__init__` (a dataclass's is generated
    Python, interpreted on every request).
    """

    __slots__ = (
        "method", "target", "version", "headers", "peer", "trusted", "keep_alive", "body",
        "chunked", "connection", "request_id", "length", "upgrade",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: Headers,
        peer: str,
        trusted: bool,
        keep_alive: bool,
        body: BodyStream | None = None,
        chunked: bool = False,
        connection: bool = False,
        length: int | None = None,
        upgrade: bytes | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.peer = peer
        self.trusted = trusted
        self.keep_alive = keep_alive
        self.body = body
        self.chunked = chunked
        self.connection = connection  # a Connection header is present
        self.request_id = b""  # set by request_head: the client's X-Request-ID or a new one
        self.length = length  # the declared Content-Length of the body, if not chunked
        # The `Upgrade` to forward: a tunnel on a 101 (proxy.http.tunnel).
        self.upgrade = upgrade

    @property
    def path(self) -> str:
        """The raw target's path, undecoded: `/bookings/%7e?q=1` -> `/bookings/%7e`.

        Found by a loop over the bytes: compiled, a third of `partition`'s cost (a method call
        by name and a tuple of three)."""
        target = self.target
        for end in range(len(target)):
            if target[end] == QUESTION_MARK:
                return target[:end].decode("latin-1")
        return target.decode("latin-1")


class Client(Protocol):
    """The client connection as the forwarder sees it."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def abort(self) -> None: ...
    # A backend's 1xx: written as `interim_head` words it.
    def interim(self, status: int, reason: bytes, headers: Headers) -> None: ...
    # After a 101: the connection, for a tunnel (ConnectionResetError if it is gone).
    def detach(self) -> End: ...


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """The header names `Connection` fields add to the hop-by-hop ones, in lower case:
    `Connection: close, X-Foo` -> {x-foo}; `Connection: keep-alive` -> {} (the usual case)."""
    tokens = NOTHING
    for name, value in headers:
        if len(name) == CONNECTION_SIZE and name.lower() == b"connection":
            tokens = tokens | value_tokens(value) if tokens else value_tokens(value)
    return tokens


def value_tokens(value: bytes) -> frozenset[bytes]:
    """What one `Connection` field adds to the hop-by-hop headers: `close, X-Foo` -> {x-foo}."""
    found = COMMON_CONNECTION.get(value)
    if found is None:
        lowered = value.lower()
        found = COMMON_CONNECTION.get(lowered)
        if found is None:
            found = frozenset(token.strip() for token in lowered.split(b",")) - OPTIONS
    return found


def lowered(name: bytes) -> bytes:
    """`name.lower()`, without the call for a watched name spelled as usual (`USUAL_SPELLINGS`).

    >>> lowered(b"Content-Length"), lowered(b"cOnTeNt-LeNgTh"), lowered(b"X-Foo")
    (b'content-length', b'content-length', b'x-foo')
    """
    for spelling, low in USUAL_SPELLINGS:
        if name == spelling:
            return low
    return name.lower()


def end_to_end(headers: Headers, named: frozenset[bytes] = NOTHING) -> list[bytes]:
    """Header lines without the hop-by-hop ones (and those `named` in `Connection`)."""
    lines: list[bytes] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered not in HOP_BY_HOP and lowered not in named:
            lines += (name, b": ", value, b"\r\n")
    return lines


def header_value(headers: Headers, name: bytes) -> bytes | None:
    """The first value of the field `name` (given in lower case), or None.

    >>> header_value([(b"Content-Type", b"text/plain")], b"content-type")
    b'text/plain'
    """
    for key, value in headers:
        if key.lower() == name:
            return value
    return None
