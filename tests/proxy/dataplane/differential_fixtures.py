"""Helpers for the differential suite: httpbin under gunicorn, the proxy in front, raw sockets.

`serve_httpbin` starts both as real processes. `converse` sends raw request bytes on one
connection and reads each answer off the wire. `expected_view` and `proxied_view` turn a direct
answer and a proxied one into the same comparable shape, removing only the differences the proxy
documents (forward.py's module docstring, README "What clients can count on").
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from stack.ports import wait_port
from tests.support import ROOT, free_port
from tests.support.raw_http import write_routes

HOST = b"httpbin.test"  # only ever a Host header value: every byte goes to 127.0.0.1
# The hop-by-hop fields forward.py names (RFC 9110 section 7.6.1's, and RFC 2616's Trailer and
# Proxy-Authenticate/-Authorization), written out here rather than imported from the code tested.
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
NEW_ID = re.compile(rb"[0-9a-f]{32}")
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class Servers:
    direct: int  # gunicorn serving httpbin
    proxied: int  # the proxy in front of it


@contextmanager
def serve_httpbin(workdir: Path) -> Iterator[Servers]:
    """httpbin under gunicorn and `python -m proxy serve` in front, on free loopback ports.

    One gthread worker: connections stay open between requests (as they do from the proxy's
    pool), and every answer comes from one process, so per-process orderings (the set behind
    `Allow`) are the same both ways. `--keep-alive 30`: a pooled connection gunicorn closes
    after its default 2 s idle could race a non-idempotent request (see proxy/http/pool.py).
    """
    backend, port, admin_port = free_port(), free_port(), free_port()
    routes = write_routes(
        workdir / "routes.yaml", {"httpbin": f"http://127.0.0.1:{backend}"}, "httpbin"
    )
    gunicorn = [
        sys.executable, "-m", "gunicorn", "httpbin:app", "--bind", f"127.0.0.1:{backend}",
        "--worker-class", "gthread", "--workers", "1", "--threads", "4", "--keep-alive", "30",
    ]  # fmt: skip
    proxy = [
        sys.executable, "-m", "proxy", "serve", "--routes", str(routes),
        "--port", str(port), "--admin-port", str(admin_port),
    ]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(_running(gunicorn, backend, workdir / "gunicorn.log", signal.SIGINT))
        stack.enter_context(_running(proxy, port, workdir / "proxy.log", signal.SIGTERM))
        yield Servers(backend, port)


@contextmanager
def _running(argv: list[str], port: int, log: Path, stop: signal.Signals) -> Iterator[None]:
    """A process for the `with` block, once `port` accepts connections: stopped with `stop`
    (gunicorn: SIGINT is its quick shutdown), killed if it has not exited 10 s later."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ), stdout=out, stderr=out)
    try:
        wait_port(port)
        # Still running: the port is ours, not another process's that took it meanwhile.
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        yield
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# what is sent


def request(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    """Raw request bytes: `request(b"GET / HTTP/1.1", b"Host: a")` -> b"GET / ...\\r\\n\\r\\n"."""
    return b"\r\n".join((line, *headers)) + b"\r\n\r\n" + body


def chunked(body: bytes, size: int = 7) -> bytes:
    """`body` in chunks of `size` bytes, with the last chunk: chunked(b"abc", 2) ->
    b"2\\r\\nab\\r\\n1\\r\\nc\\r\\n0\\r\\n\\r\\n"."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@dataclass(frozen=True)
class Step:
    """One request of a conversation, and how many JSON objects in its answer echo the request
    headers (httpbin's "headers"): each of those shows the proxy's X-Forwarded-Host, and with
    `env` (httpbin's show_env) also its X-Forwarded-For/-Proto and X-Request-ID."""

    data: bytes
    echoes: int = 0
    env: bool = False

    @property
    def method(self) -> bytes:
        return self.data.split(b" ", 1)[0]

    @property
    def http10(self) -> bool:
        return self.data.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0")

    def header(self, name: bytes) -> bytes | None:
        head = self.data.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.lower() == name:
                return value.strip()
        return None


@dataclass(frozen=True)
class Case:
    """Requests sent on one connection: each after the answer before it, or all in one write
    (`pipelined`), then with `half_close` the client's end shut for writing."""

    id: str
    steps: tuple[Step, ...]
    pipelined: bool = False
    half_close: bool = False


# what comes back


@dataclass(frozen=True)
class Wire:
    """One answer as read off the socket: body without its framing."""

    status_line: bytes
    lines: tuple[bytes, ...]  # header lines, byte for byte
    body: bytes
    framing: str  # "length", "chunked" or "unsized" (no Content-Length, not chunked)
    persistent: bool  # the connection may carry another request (for this client's version)
    after: bytes | None  # when not persistent: what arrived after the answer, until EOF

    def values(self, name: bytes) -> list[bytes]:
        return [value for line in self.lines if (value := field(line, name)) is not None]


def field(line: bytes, name: bytes) -> bytes | None:
    """The value of header `line` if it is a `name` field (lower case), else None."""
    key, _, value = line.partition(b":")
    return value.strip(b" \t") if key.lower() == name else None


def tokens(lines: tuple[bytes, ...]) -> frozenset[bytes]:
    """The lower-cased tokens of every Connection field."""
    found = [value for line in lines if (value := field(line, b"connection")) is not None]
    return frozenset(token.strip().lower() for value in found for token in value.split(b","))


class Reader:
    """Buffered reads from a blocking socket; EOFError when the peer closes too early."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.buffer += data
        return bool(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise EOFError(f"closed before {marker!r}, after {self.buffer[:200]!r}")
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise EOFError(f"closed {size - len(self.buffer)} bytes short")
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def rest(self) -> bytes:
        """Everything until the peer closes (READ_TIMEOUT if it never does)."""
        while self._fill():
            pass
        found, self.buffer = self.buffer, b""
        return found


def converse(port: int, case: Case) -> list[Wire]:
    """Send the case's steps on one connection to 127.0.0.1:`port` and read their answers; stop
    early when an answer ends the connection."""
    answers: list[Wire] = []
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        reader = Reader(sock)
        at_once = case.pipelined or case.half_close
        if at_once:
            sock.sendall(b"".join(step.data for step in case.steps))
        if case.half_close:
            sock.shutdown(socket.SHUT_WR)
        for number, step in enumerate(case.steps, 1):
            try:
                if not at_once:
                    sock.sendall(step.data)
                answer = read_answer(reader, step)
            except (EOFError, ConnectionError) as exc:
                kept = f"answer {number - 1} kept it open" if answers else "no answer yet"
                message = f"port {port}: request {number} unanswered ({kept}): {exc}"
                raise AssertionError(message) from exc
            answers.append(answer)
            if not answer.persistent:
                break
    return answers


def read_answer(reader: Reader, step: Step) -> Wire:
    """One response, framed as RFC 9112 section 6.3 says for `step`'s method and version."""
    head = reader.until(b"\r\n\r\n").split(b"\r\n")
    status_line, lines = head[0], tuple(head[1:])
    status = int(status_line.split(b" ")[1])
    bodyless = step.method == b"HEAD" or status in (204, 304) or status < 200
    encodings = [v for line in lines if (v := field(line, b"transfer-encoding")) is not None]
    lengths = [v for line in lines if (v := field(line, b"content-length")) is not None]
    if encodings and encodings[-1].lower().endswith(b"chunked"):
        framing, body = "chunked", b"" if bodyless else read_chunked(reader)
    elif lengths:
        framing, body = "length", b"" if bodyless else reader.exactly(int(lengths[0]))
    else:
        framing, body = "unsized", b"" if bodyless else reader.rest()
    named = tokens(lines)
    if framing == "unsized" and not bodyless or b"close" in named:
        persistent = False
    else:
        persistent = not step.http10 or b"keep-alive" in named
    after = None if persistent else reader.rest()
    return Wire(status_line, lines, body, framing, persistent, after)


def read_chunked(reader: Reader) -> bytes:
    body = b""
    while size := int(reader.until(b"\r\n").split(b";")[0], 16):
        body += reader.exactly(size)
        assert reader.exactly(2) == b"\r\n", "chunk not followed by CRLF"
    while reader.until(b"\r\n"):  # trailer fields, then the empty line
        pass
    return body


# the comparison


@dataclass(frozen=True)
class View:
    """What a client can tell about an answer, once documented differences are removed."""

    status_line: bytes
    lines: tuple[bytes, ...]
    request_ids: tuple[bytes, ...]
    body: bytes
    framing: str
    persistent: bool
    after: bytes | None


def expected_view(step: Step, direct: Wire) -> View:
    """What the proxy should answer, given gunicorn's direct answer to the same bytes.

    - The status line carries HTTP/1.1 even for an HTTP/1.0 client: an intermediary sends its
      own version (RFC 9110 section 6.2), and the proxy speaks HTTP/1.1 upstream (forward.py,
      `request_head`); gunicorn echoes the client's.
    - Hop-by-hop fields are the proxy's own (dropped both ways, re-framed): a Content-Length
      stays; an unsized body is chunked for an HTTP/1.1 client and close-delimited for 1.0.
    - An X-Request-ID is added: the client's own, else a new one.
    """
    version, _, rest = direct.status_line.partition(b" ")
    assert version == (b"HTTP/1.0" if step.http10 else b"HTTP/1.1")
    bodyless = step.method == b"HEAD" or direct.status_line.split(b" ")[1] in (b"204", b"304")
    framing = direct.framing
    if framing != "length":
        framing = "unsized" if bodyless or step.http10 else "chunked"
    return View(
        b"HTTP/1.1 " + rest,
        end_to_end(direct.lines),
        (step.header(b"x-request-id") or b"<new>",),
        stamped(direct.lines, direct.body),
        framing,
        direct.persistent,
        None if direct.persistent else b"",
    )


def proxied_view(step: Step, proxied: Wire) -> View:
    """The proxy's answer, with its documented additions taken out: X-Request-ID (a new id shown
    as `<new>`), and the request headers it adds where httpbin echoes them in the body."""
    ids = tuple(
        b"<new>" if step.header(b"x-request-id") is None and NEW_ID.fullmatch(value) else value
        for value in proxied.values(b"x-request-id")
    )
    body = unechoed(step, proxied)
    lines = end_to_end(proxied.lines, drop=b"x-request-id")
    if body != proxied.body:
        lines = tuple(resized(line, len(proxied.body), len(body)) for line in lines)
    return View(
        proxied.status_line,
        lines,
        ids,
        stamped(proxied.lines, body),
        proxied.framing,
        proxied.persistent,
        proxied.after,
    )


def end_to_end(lines: tuple[bytes, ...], drop: bytes = b"") -> tuple[bytes, ...]:
    """Header lines without hop-by-hop fields (and those Connection names) and without `drop`;
    Date, which moves with the clock, is checked and then shown as `<date>`."""
    hop = HOP_BY_HOP | tokens(lines) | {drop}
    kept = []
    for line in lines:
        name = line.partition(b":")[0].lower()
        if name in hop:
            continue
        if name == b"date":
            parsedate_to_datetime(line.partition(b":")[2].strip().decode())
            line = b"Date: <date>"
        kept.append(line)
    return tuple(kept)


def resized(line: bytes, raw: int, normalised: int) -> bytes:
    """A Content-Length line for a body normalised from `raw` to `normalised` bytes."""
    if field(line, b"content-length") == b"%d" % raw:
        return b"Content-Length: %d" % normalised
    return line


def stamped(lines: tuple[bytes, ...], body: bytes) -> bytes:
    """A gzip body with its MTIME (the second it was made, RFC 1952) zeroed."""
    gzipped = any(field(line, b"content-encoding") == b"gzip" for line in lines)
    if gzipped and body[:3] == b"\x1f\x8b\x08":
        return body[:4] + bytes(4) + body[8:]
    return body


def unechoed(step: Step, proxied: Wire) -> bytes:
    """The proxied body without the entries httpbin echoes for headers the proxy added upstream.

    Each entry must appear exactly `step.echoes` times; it goes with one neighbouring comma, so
    both httpbin's indented JSON and its one-line JSON (/stream) stay as gunicorn wrote them.
    """
    added = [(b"X-Forwarded-Host", step.header(b"host") or b"")]
    if step.env:
        ids = proxied.values(b"x-request-id")
        added += [
            (b"X-Forwarded-For", b"127.0.0.1"),
            (b"X-Forwarded-Proto", b"http"),
            (b"X-Request-Id", ids[0] if ids else b""),
        ]
    body = proxied.body
    for name, value in added if step.echoes else ():
        entry = json.dumps(name.decode()).encode() + b": " + json.dumps(value.decode()).encode()
        assert body.count(entry) == step.echoes, f"{entry!r} not echoed {step.echoes} times"
        pattern = re.escape(entry) + rb",\s*|,\s*" + re.escape(entry)
        body, removed = re.subn(pattern, b"", body)
        assert removed == step.echoes
    return body
