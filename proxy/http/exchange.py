"""One exchange with a backend, as data: the request as it goes on the wire (`UpstreamRequest`),
the response as parsed (`Response`), where interim (1xx) responses go (`InterimSink`), the state
of the exchange as a connection parses it (`ExchangeState`), and the facts about response heads
the parser works with (statuses without a body, the framing fields' name sizes, a `Keep-Alive`
timeout).

`proxy.http.connection` fills these in; `proxy.http.pool.Upstreams.send` takes an
`UpstreamRequest` and returns the `Response` inside an `Exchange`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final, Protocol

from proxy.errors import UpstreamProtocolError
from proxy.http.scan import ResponseHead, pairs
from proxy.http.streams import BodyStream

Headers = list[tuple[bytes, bytes]]
NO_BODY_STATUS = frozenset({101, 204, 304})


def name_sizes(names: Iterable[bytes]) -> int:
    """A bit per length of `names`: `sizes >> len(name) & 1` is 0 for a name none of them can be.
    The parsers and heads test a name's size before they lower() it; bits, not a set of sizes:
    compiled, a set test boxes the size first.

    >>> sizes = name_sizes([b"te", b"upgrade"])
    >>> sizes >> len(b"Upgrade") & 1, sizes >> len(b"Accept") & 1
    (1, 0)
    """
    sizes = 0
    for name in names:
        sizes |= 1 << len(name)
    return sizes


def content_length(value: bytes) -> int:
    """A Content-Length value llhttp has checked (digits, then maybe spaces or tabs) as a number.
    Compiled, a loop over plain digits costs a tenth of `int(value)`.

    >>> content_length(b"1024"), content_length(b"0"), content_length(b"5 \t")
    (1024, 0, 5)
    """
    number = 0
    for digit in value:
        if digit < 48 or digit > 57:
            return int(value)  # the whitespace llhttp left after the digits
        number = number * 10 + digit - 48
    return number


FRAMING: Final = (b"connection", b"content-length", b"transfer-encoding", b"keep-alive")
FRAMING_NAME_SIZES: Final = name_sizes(FRAMING)


class UpstreamRequest:
    """A request ready for the wire: `head` ends with the blank line; the body is re-framed.

    The hot path's messages are plain classes, not dataclasses: mypyc compiles their `__init__`
    (a dataclass's is generated Python, interpreted for every request).
    """

    __slots__ = ("method", "head", "body", "chunked", "idempotent", "upgrade", "interim")

    def __init__(
        self,
        method: str,
        head: bytes,
        body: BodyStream | None = None,
        chunked: bool = False,
        idempotent: bool = False,
        upgrade: bool = False,
        interim: InterimSink | None = None,
    ) -> None:
        self.method = method
        self.head = head
        self.body = body
        self.chunked = chunked
        self.idempotent = idempotent
        # Asks to switch protocols: a 101 is its final answer (proxy.http.tunnel).
        self.upgrade = upgrade
        self.interim = interim  # gets the backend's 1xx other than 101; None: dropped


class Upgrading(Protocol):
    """The response parser, as far as a 101 goes (httptools.HttpResponseParser)."""

    def should_upgrade(self) -> bool: ...


class InterimSink(Protocol):
    """Where a backend's interim (1xx) responses go while the final one is awaited."""

    def interim(self, status: int, reason: bytes, headers: Headers) -> None: ...


class Response:
    """A backend's final response head, and its body as it arrives.

    A head `proxy.http.scan` read whole keeps its field lines as they came (`lines`, with the
    span of its one hop-by-hop line, `Connection`, and whether X-Request-ID is among them): the
    client's head copies them, and `headers` is made from them only when something asks.
    """

    __slots__ = (
        "status", "reason", "_headers", "body", "has_body", "keep_alive", "sized", "chunked",
        "connection", "lines", "hop_start", "hop_end", "echoed",
    )  # fmt: skip

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: Headers | None,
        body: BodyStream,
        has_body: bool,
        keep_alive: bool,
        sized: bool = False,
        chunked: bool = False,
        connection: frozenset[bytes] = frozenset(),
        lines: bytes = b"",
        hop: tuple[int, int] = (0, 0),
        echoed: bool = False,
    ) -> None:
        self.status = status
        self.reason = reason
        self._headers = headers  # None: not made from `lines` yet
        self.body = body
        self.has_body = has_body
        self.keep_alive = keep_alive
        self.sized = sized  # Content-Length present
        self.chunked = chunked  # Transfer-Encoding: chunked
        # The names its Connection fields list, in lower case (keep-alive, close, X-Foo, ...).
        self.connection = connection
        self.lines = lines  # b"": the head came through httptools, see `headers`
        self.hop_start, self.hop_end = hop  # the Connection line in `lines`; (0, 0): none
        self.echoed = echoed  # an X-Request-ID in `lines`

    @property
    def headers(self) -> Headers:
        """The (name, value) pairs, in order."""
        if self._headers is None:
            self._headers = pairs(self.lines)
        return self._headers


class ExchangeState:
    """The exchange a connection (`proxy.http.connection`) carries, as its parser fills it in."""

    __slots__ = (
        "method", "read_timeout", "head", "headers", "interim", "upgrade", "reason", "response",
        "sized", "chunked", "connection", "until_eof", "sent", "complete", "idle_timeout",
        "length", "left",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        read_timeout: float,
        head: asyncio.Future[Response],
        interim: InterimSink | None,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.read_timeout = read_timeout
        self.head = head
        self.headers: Headers = []
        self.interim = interim
        self.upgrade = upgrade
        self.reason = b""
        self.response: Response | None = None
        self.sized = False
        self.chunked = False
        self.connection: frozenset[bytes] = frozenset()  # see Response.connection
        self.until_eof = False
        self.sent = False
        self.complete = False
        self.idle_timeout: float | None = None  # from the backend's `Keep-Alive: timeout=N`
        self.length = 0  # the Content-Length value, when `sized`
        self.left = 0  # bytes of a sized body not yet fed: past the first read, no parser

    def interim_head(self, status: int, parser: Upgrading) -> bool:
        """A head whose status is not 200-599: True for an interim (1xx) response, handed to
        `interim` if there is one (parsing goes on to the final response); False for a 101 the
        request asked for, its final answer. Any other status (101 unasked, or outside 100-599)
        is not an answer the proxy can pass on: 502.
        """
        if status < 100 or status > 599:
            raise UpstreamProtocolError()
        if status == 101:
            if self.upgrade and parser.should_upgrade():  # Upgrade, Connection: upgrade
                return False
            raise UpstreamProtocolError()
        if self.interim is not None:
            self.interim.interim(status, self.reason, self.headers)
        self.reason, self.headers = b"", []
        self.sized = self.chunked = False
        self.connection = frozenset()
        return True

    def read_whole(self, head: ResponseHead, body: BodyStream, data: bytes) -> Response:
        """The response whose head `proxy.http.scan.response_head` read from `data` in one call,
        as the httptools callbacks would have filled this state in; the body bytes `data` holds
        are fed. Complete when `left` is 0."""
        status, reason, lines, hop_start, hop_end, echoed, keep_alive, length, end = head
        has_body = status != 204 and status != 304  # the only statuses without a body it reads
        self.reason, self.sized, self.length = reason, length >= 0, length
        response = Response(
            status, reason, None, body, has_body, keep_alive, self.sized, False, self.connection,
            lines, (hop_start, hop_end), echoed,
        )  # fmt: skip
        self.response = response
        if has_body:
            if end < len(data):
                body.feed(data[end:])
            self.left = length - (len(data) - end)
        return response


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
