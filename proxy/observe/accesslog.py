"""The access log: one JSON line per request on stdout, written in batches.

A line (keys always in this order)::

    {"time": "2026-11-28T10:00:00.123Z", "request_id": "0af7…", "method": "GET",
     "path": "/bookings/7", "resource": "bookings", "backend": "drf", "status": 200,
     "duration_ms": 3.141, "bytes_in": 0, "bytes_out": 1234, "canary": false,
     "forced": false, "fallback": "drf", "shadow": false, "client": "sha256:2a97516c"}

`path` is the raw request path without the query string; `bytes_in` / `bytes_out` count body
bytes (request body received, response body sent, without chunk framing); `fallback` is the
backend whose answer was replaced (false when none was); `forced`: a tester's override chose the
backend; `client`: the credential the client sent, as a digest (of its Authorization header,
else of its X-Application-Key; false when it sent neither).

No secret is ever written, only its `digest`: `sha256:` and the first 8 hex digits of its
SHA-256. The query string (where `?access_token=` or `?key=` would be) is never written, nor any
header but through `client`; the user information of an absolute-form target
(`http://user:pass@host/x`) is written as its digest.

Lines are built with a few string operations (no logging module, no json.dumps of a dict: cheap
on the hot path) and written to the stream in batches of whole lines at most PIPE_BUF bytes
each, every FLUSH_SECONDS or when the batch fills: several workers writing to one pipe never
interleave within a line. Switch it off with STRANGLER_ACCESS_LOG=0.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Final, TextIO

from proxy.http.messages import Headers

FLUSH_SECONDS = 0.1
BATCH_BYTES = 4096  # PIPE_BUF on Linux: one write of at most this many bytes is atomic
JSON_BOOL = ("false", "true")
# "000" to "999": milliseconds of the time, and the decimals of the duration.
PADDED: Final = tuple(f"{n:03d}" for n in range(1000))
QUOTE = '"'
escape = encode_basestring_ascii
DIGEST_DIGITS = 8
DIGESTS_KEPT = 4096  # the credentials of that many clients, least recently seen out first
AUTHORIZATION, APPLICATION_KEY = b"authorization", b"x-application-key"
AUTHORIZATION_SIZE, APPLICATION_KEY_SIZE = len(AUTHORIZATION), len(APPLICATION_KEY)


@lru_cache(maxsize=DIGESTS_KEPT)
def digest(secret: bytes) -> str:
    """What the log writes in place of a secret (remembered: a client sends the same credential
    on every request, and a SHA-256 costs about as much as the rest of its log line).

    >>> digest(b"demo")
    'sha256:2a97516c'
    """
    return f"sha256:{hashlib.sha256(secret).hexdigest()[:DIGEST_DIGITS]}"


def client(headers: Headers) -> str | None:
    """The digest of the client's credential: its first Authorization header, else its first
    X-Application-Key; None when it sent neither (or them empty). One pass over the headers,
    comparing a name only when its length fits.

    >>> client([(b"X-Application-Key", b"demo"), (b"Accept", b"*/*")])
    'sha256:2a97516c'
    """
    key = None
    for name, value in headers:
        size = len(name)
        if size == AUTHORIZATION_SIZE and value and name.lower() == AUTHORIZATION:
            return digest(value)
        if size == APPLICATION_KEY_SIZE and value and key is None:
            if name.lower() == APPLICATION_KEY:
                key = value
    return None if key is None else digest(key)


def without_userinfo(path: str) -> str:
    """An absolute-form target's user information as its digest (other paths as they are).

    >>> without_userinfo("http://u:pw@h/b?q"), without_userinfo("/a@b")
    ('http://sha256:aa12c3c4@h/b?q', '/a@b')
    """
    scheme, separator, rest = path.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not (separator and at):
        return path
    return f"{scheme}://{digest(userinfo.encode('latin-1'))}@{host}{slash}{tail}"


class AccessLog:
    """Buffers access-log lines and writes them to `stream` (default: stdout at creation)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def request(
        self,
        request_id: str,
        method: str,
        path: str,
        resource: str,
        backend: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
        canary: bool = False,
        forced: bool = False,
        fallback: str | None = None,
        shadow: bool = False,
        client: str | None = None,
    ) -> None:
        """Log one finished request. `method`, `resource`, `backend` and `fallback` are tokens
        (an HTTP method; names from the routes table), `client` a `digest`: only `request_id`
        and `path`, which the client chose, need JSON escaping."""
        if path[:1] != "/" and "@" in path:
            path = without_userinfo(path)
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # No format specs (`:03d`, `:.3f`): compiled, an f-string of plain str and int parts is
        # one concatenation, while a spec makes it a str.format call (a third of the log's cost).
        millis = PADDED[int((now - second) * 1000)]
        micros = int(seconds * 1_000_000 + 0.5)
        duration = f"{micros // 1000}.{PADDED[micros % 1000]}"
        self.write(
            f'{{"time": "{self._stamp}.{millis}Z", '
            f'"request_id": {escape(request_id)}, "method": "{method}", "path": {escape(path)}, '
            f'"resource": "{resource}", "backend": "{backend}", "status": {status}, '
            f'"duration_ms": {duration}, "bytes_in": {bytes_in}, '
            f'"bytes_out": {bytes_out}, "canary": {JSON_BOOL[canary]}, '
            f'"forced": {JSON_BOOL[forced]}, '
            f'"fallback": {"false" if fallback is None else QUOTE + fallback + QUOTE}, '
            f'"shadow": {JSON_BOOL[shadow]}, '
            f'"client": {"false" if client is None else QUOTE + client + QUOTE}}}\n'
        )

    def write(self, line: str) -> None:
        """Queue one line (ending in a newline); it is written within FLUSH_SECONDS."""
        self._lines.append(line)
        self._size += len(line)
        if self._size >= BATCH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write every queued line now, in writes of whole lines of at most BATCH_BYTES."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._lines, self._size = self._lines, [], 0
        batch: list[str] = []
        size = 0
        for line in lines:
            if batch and size + len(line) > BATCH_BYTES:
                self._emit(batch)
                batch, size = [], 0
            batch.append(line)
            size += len(line)
        if batch:
            self._emit(batch)

    def _emit(self, batch: list[str]) -> None:
        try:
            self._stream.write("".join(batch))
            self._stream.flush()
        except (OSError, ValueError):
            pass
