"""How a client connection reads requests: httptools' callbacks, and what llhttp cannot do alone;
a read that is one whole request head without a body in one call instead, where
`proxy.http.scan`'s fast path runs (`_read_whole`).

`RequestReading` is the reading half of `proxy.dataplane.listener.ClientConnection`: it turns
llhttp's callbacks into `Request`s for the connection's queue, and enforces what the parser does
not: header and body limits, the `Host` rules, only `chunked` as a request transfer coding,
trailers never reaching a head, extension methods parsed with a stand-in, a head sent in pieces
capped as a whole, a stalled body timed out (408), and what happens after a request that asks
to switch protocols.
"""

from __future__ import annotations

import asyncio
import re
from typing import Final

import httptools

from proxy.errors import (
    BadRequest,
    BodyTooLarge,
    HeadersTooLarge,
    ProxyError,
    RequestBodyTimeout,
    RequestLineTooLong,
    UnsupportedTransferCoding,
)
from proxy.http.exchange import FRAMING, content_length, name_sizes
from proxy.http.messages import Headers, Request, lowered
from proxy.http.scan import RequestReader
from proxy.http.streams import BodyStream
from proxy.http.tunnel import upgrade_protocol
from proxy.settings import Settings

MAX_HEADER_FIELDS = 100
# Request header names the listener looks at while parsing: the framing ones, and `Host`.
WATCHED_NAME_SIZES: Final = name_sizes((*FRAMING, b"host"))
# Of the versions llhttp takes (0.9, 1.0, 1.1, 2.0), it keeps a connection alive without a
# `Connection` header for HTTP/1.1 only: that request's version needs no asking (httptools
# formats it with str.format, a fortieth of a request's cost). Pinned in tests (test_reading.py).
ALIVE_WITHOUT_CONNECTION: Final = "1.1"
# An extension method (RFC 9110 section 9.1) that llhttp does not know, with the rest of its
# request line: `FOO /x HTTP/1.1` -> (b"FOO", b" /x HTTP/1.1...").
EXTENSION_METHOD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32})( )")
# Parsed in its place: llhttp frames a request by its headers, never by a method it knows.
STAND_IN_METHOD = b"GET"


class Limits:
    """The request size limits of `Settings`, read for every header: compiled, a field of this
    class is read directly, while `Settings` (not compiled) is looked up by name each time."""

    __slots__ = ("request_line", "header_size", "headers_total", "body_size", "head")

    def __init__(self, settings: Settings) -> None:
        self.request_line: int = settings.max_request_line
        self.header_size: int = settings.max_header_size
        self.headers_total: int = settings.max_headers_total
        self.body_size: int = settings.max_body_size
        # The three a head is checked against, for `proxy.http.scan.request_head` (see there).
        self.head: tuple[int, ...] = (self.request_line, self.header_size, self.headers_total)


class RequestReading:
    """The request-parsing state and callbacks of a client connection (a mixin: the connection
    provides the transport, the queue and what to do with a request or an error)."""

    # Provided by the connection:
    transport: asyncio.Transport | None
    closed: bool
    _settings: Settings
    _limits: Limits  # the same settings' size limits
    _loop: asyncio.AbstractEventLoop
    _peer: str
    _trusted: bool
    _queue: list[Request | ProxyError]
    _closing: bool
    _held: bool
    _read_head: RequestReader | None  # proxy.http.scan's fast path, where it runs

    def _enqueue(self, item: Request | ProxyError) -> None:
        raise NotImplementedError

    def _reject(self, error: ProxyError) -> None:
        raise NotImplementedError

    def _stop_reading(self) -> None:
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def _init_reading(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0
        self._length: int | None = None
        self._chunked = False
        self._connection = False
        self._hosts = 0  # Host fields in the head being parsed
        self._head_bytes = 0  # bytes received while a head is incomplete (see data_received)
        self._method: str | None = None  # an extension method parsed as STAND_IN_METHOD
        self._messages = 0  # request messages completed on this connection
        self._body: BodyStream | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0  # body bytes received when the body timer last looked
        self._switching: bytearray | None = None  # an upgrade awaits its answer: bytes after it
        self._head_started: float | None = None  # loop time the request head now arriving began
        self._heads_begun = 0  # request heads begun here: tells one head from the next
        # The last request allowed another after it: llhttp refuses any byte after one that
        # did not, so the fast path (`_read_whole`) does not read on either.
        self._reusable = True

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._head_started = self._loop.time()
        self._heads_begun += 1
        if self._headers:  # trailers of the previous request: never part of this head
            self._reset_head()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.request_line:
            raise RequestLineTooLong()

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        self._header_bytes += size
        if (
            size > self._limits.header_size
            or self._header_bytes > self._limits.headers_total
            or len(self._headers) >= MAX_HEADER_FIELDS
        ):
            raise HeadersTooLarge()
        self._headers.append((name, value))
        if WATCHED_NAME_SIZES >> len(name) & 1:
            low = lowered(name)
            if low == b"host":
                self._hosts += 1
            elif low == b"content-length":
                self._length = content_length(value)
            elif low == b"transfer-encoding":
                # Only `chunked`, once: with another coding the body's end is unknown to us.
                if self._chunked or value.strip().lower() != b"chunked":
                    raise UnsupportedTransferCoding()
                self._chunked = True
            elif low == b"connection":
                self._connection = True

    def on_headers_complete(self) -> None:
        assert self.transport is not None
        self._head_started = None
        self._head_bytes = 0
        parser = self._parser
        method = self._method or parser.get_method().decode("ascii")
        keep_alive = self._reusable = parser.should_keep_alive()
        alive_by_default = keep_alive and not self._connection
        version = ALIVE_WITHOUT_CONNECTION if alive_by_default else parser.get_http_version()
        if self._hosts != 1 and (self._hosts or version != "1.0"):
            raise BadRequest("Host missing or repeated")  # RFC 9112 section 3.2
        length, chunked = self._length, self._chunked
        if length is not None and length > self._limits.body_size:
            raise BodyTooLarge()
        self._body = BodyStream(self.transport) if chunked or length else None
        if self._body is not None:
            self._watch_body()
        request = Request(
            method,
            self._url,
            version,
            self._headers,
            self._peer,
            self._trusted,
            keep_alive,
            self._body,
            chunked,
            self._connection,
            length=None if chunked else length,
        )
        # _reset_head(), inline: this runs for every request
        self._url = b""
        self._headers = []
        self._header_bytes = self._hosts = 0
        self._length = self._method = None
        self._chunked = self._connection = False
        self._enqueue(request)

    def _read_whole(self, data: bytes) -> bool:
        """A read that is one whole request head without a body, read by `proxy.http.scan` in
        one call: the request the callbacks above would have made of it, queued. False (and
        nothing done) for any other read, which httptools then parses.

        Only between requests (`data_received` knows), with llhttp between messages too; not for
        the stand-in of an extension method."""
        limits = self._limits
        if self._read_head is None or self._method is not None:
            return False
        head = self._read_head(data, limits.head)
        if head is None:
            return False
        method, target, version, headers, keep_alive, connection = head
        if self._headers:  # trailers of the previous request (as on_message_begin)
            self._reset_head()
        self._heads_begun += 1
        self._messages += 1
        self._reusable = keep_alive
        self._enqueue(
            Request(
                method, target, version, headers, self._peer, self._trusted, keep_alive, None,
                False, connection,
            )
        )  # fmt: skip
        return True

    def _reset_head(self) -> None:
        """Forget the head just parsed (or the trailers after it): the next head starts clean."""
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._length = None
        self._chunked = self._connection = False
        self._hosts = 0
        self._method = None

    def on_body(self, body: bytes) -> None:
        stream = self._body
        if stream is None:
            return
        stream.feed(body)
        if stream.total > self._limits.body_size:
            raise BodyTooLarge()

    def on_message_complete(self) -> None:
        self._messages += 1
        if self._body is not None:
            self._body.feed_eof()
            self._body = None
            self._cancel_body_timer()

    # what the parser cannot do alone

    def _extension_method(self, data: bytes) -> bool:
        """Parse a request whose method llhttp does not know (`FOO`, `QUERY` on older llhttp)
        with a stand-in method, and forward it under its own name, as nginx does.

        Only for a request that starts `data`, with its whole method in it: False otherwise.
        """
        match = EXTENSION_METHOD.match(data)
        if match is None:
            return False
        self._parser = httptools.HttpRequestParser(self)
        self._reset_head()
        self._method = match.group(1).decode("ascii")
        self._head_started = None
        self.data_received(STAND_IN_METHOD + data[match.end(1) :])
        return True

    def _count_head_bytes(self, size: int) -> None:
        """Cap a head that arrives in pieces as a whole, before httptools has buffered one
        huge field line in full (its size is only checked once the line is complete).

        Counts the reads after the one where the head began: that first read is bounded by the
        transport's read size, and counting it could count pipelined requests before it.
        """
        self._head_bytes += size
        limit = self._limits.request_line + self._limits.headers_total
        if self._head_bytes > limit and not self._closing:
            self._reject(HeadersTooLarge())

    def _watch_body(self) -> None:
        """Time out a request body whose client stops sending (nginx's client_body_timeout)."""
        self._body_seen = 0
        self._body_timer = self._loop.call_later(self._settings.body_timeout, self._on_body_timer)

    def _on_body_timer(self) -> None:
        """No body byte for `body_timeout` seconds -> 408, unless reading is paused because the
        backend is the slow side (its own send timeout covers that)."""
        self._body_timer = None
        body = self._body
        if body is None or self.closed:
            return
        if body.total == self._body_seen and not body.paused:
            self._reject(RequestBodyTimeout())
            return
        self._body_seen = body.total
        self._body_timer = self._loop.call_later(self._settings.body_timeout, self._on_body_timer)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # connection upgrades (proxy.http.tunnel)

    def _upgrade(self, rest: bytes) -> None:
        """llhttp stopped after a request that asks to switch protocols, or a CONNECT: `rest`
        followed its head, and nothing is parsed until the request's fate is known.

        An upgrade from an HTTP/1.1 client without a body goes to the backend with its
        `Upgrade`: on a 101 a tunnel takes the connection over (`detach`), on any other answer
        the connection goes on as HTTP/1.1 (`_resume_http`). An h2c or HTTP/1.0 one is forwarded
        without its upgrade and parsing goes on (a loop pass later). One with a body is 400: llhttp
        leaves the body unparsed. After a CONNECT the connection closes.
        """
        self._stop_reading()
        request = self._queue[-1] if self._queue else None
        if not isinstance(request, Request) or request.method == "CONNECT":
            return
        if request.body is not None:
            self._queue.pop()
            self._reject(BadRequest("Bad request: a request to switch protocols with a body."))
            return
        self._switching = bytearray(rest)
        if request.version == "1.1":
            request.upgrade = upgrade_protocol(request.headers)
        if request.upgrade is None:
            self._loop.call_soon(self._resume_http)

    def _resume_http(self) -> None:
        """No tunnel after all: parse on from the bytes after the upgrade request's head."""
        rest, self._switching = self._switching, None
        if rest is None or self.closed:
            return
        self._closing = False
        if rest:
            self.data_received(bytes(rest))
        if not (self._closing or self._held) and self.transport is not None:
            self.transport.resume_reading()
