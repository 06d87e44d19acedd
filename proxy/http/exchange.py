"""One exchange with a backend, as data: the request as it goes on the wire (`UpstreamRequest`),
the response as parsed (`Response`), where interim (1xx) responses go (`InterimSink`), and the
facts about response heads the parser works with (statuses without a body, the framing fields'
name sizes, a `Keep-Alive` timeout).

`proxy.http.connection` fills these in; `proxy.http.pool.Upstreams.send` takes an
`UpstreamRequest` and returns the `Response` inside an `Exchange`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from proxy.http.streams import BodyStream

Headers = list[tuple[bytes, bytes]]
NO_BODY_STATUS = frozenset({101, 204, 304})
FRAMING_NAME_SIZES = frozenset(
    {len(b"connection"), len(b"content-length"), len(b"transfer-encoding"), len(b"keep-alive")}
)


@dataclass(slots=True)
class UpstreamRequest:
    """A request ready for the wire: `head` ends with the blank line; the body is re-framed."""

    method: str
    head: bytes
    body: BodyStream | None = None
    chunked: bool = False
    idempotent: bool = False
    upgrade: bool = False  # asks to switch protocols: a 101 is its final answer (proxy.http.tunnel)
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
