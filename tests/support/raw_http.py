"""Raw HTTP on loopback for the data-plane tests: byte-level clients and responses, fake
upstreams that record the exact bytes they received, and handles on the proxies the fixtures of
`tests/proxy/conftest.py` start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from proxy.dataplane.listener import Listener
from proxy.http.pool import Upstreams
from proxy.state import ProxyState

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawRequest:
    head: bytes
    body: bytes

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        lines = self.head.split(b"\r\n")[1:]
        return [tuple(line.split(b": ", 1)) for line in lines if line]  # type: ignore[misc]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to and excluding the blank line; b"" at EOF."""
    try:
        return (await reader.readuntil(b"\r\n\r\n"))[:-4]
    except asyncio.IncompleteReadError:
        return b""


async def read_body(reader: asyncio.StreamReader, head: bytes, *, no_body: bool = False) -> bytes:
    """The body framed as `head` says (Content-Length, chunked, or until EOF when `until_eof`)."""
    fields = {
        name.lower(): value
        for name, _, value in (line.partition(b": ") for line in head.split(b"\r\n")[1:])
    }
    if no_body:
        return b""
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return body
            body += (await reader.readexactly(size + 2))[:-2]
    if b"content-length" in fields:
        return await reader.readexactly(int(fields[b"content-length"]))
    if head.startswith(b"HTTP/"):
        return await reader.read()
    return b""


@dataclass
class Upstream:
    """A raw loopback HTTP server; `requests` holds what it received, in order."""

    port: int
    server: asyncio.Server
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    open_connections: int = 0
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


def respond(
    status: bytes = b"200 OK", body: bytes = b"ok", headers: tuple[bytes, ...] = ()
) -> bytes:
    """A complete response with Content-Length."""
    lines = [b"HTTP/1.1 " + status, *headers, b"Content-Length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def canned(
    response: bytes | Callable[[RawRequest], bytes], *, close: bool = False
) -> Callable[[Upstream], Handler]:
    """A keep-alive upstream answering every request with `response`."""

    def make(upstream: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while head := await read_head(reader):
                request = RawRequest(head, await read_body(reader, head))
                upstream.requests.append(request)
                writer.write(response(request) if callable(response) else response)
                await writer.drain()
                if close:
                    break

        return handle

    return make


def table_text(backends: dict[str, str], default: str, **options: object) -> str:
    lines = ["version: 1", "backends:"]
    for name, url in backends.items():
        lines.append(f"  {name}:")
        lines.append(f"    url: {url}")
        lines += [f"    {key}: {value}" for key, value in options.items()]
    lines.append(f"default: {default}")
    return "\n".join(lines) + "\n"


@dataclass
class InProcessProxy:
    port: int
    state: ProxyState
    upstreams: Upstreams
    listener: Listener

    def pool_size(self) -> int:
        return sum(pool.size for pool in self.upstreams._pools.values())


@dataclass
class RawResponse:
    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(b" ")[1])

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


async def exchange(
    port: int, data: bytes, *, head_request: bool = False, timeout: float = 5.0
) -> RawResponse:
    """Send raw bytes on a fresh connection, read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(read_response(reader, head_request=head_request), timeout)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader, *, head_request: bool = False) -> RawResponse:
    head = await read_head(reader)
    assert head, "connection closed before a response"
    lines = head.split(b"\r\n")
    headers = [tuple(line.split(b": ", 1)) for line in lines[1:]]
    status = int(lines[0].split(b" ")[1])
    no_body = head_request or status in (204, 304)
    body = await read_body(reader, head, no_body=no_body)
    return RawResponse(lines[0], headers, body)  # type: ignore[arg-type]


def write_routes(path: Path, backends: dict[str, str], default: str, **options: object) -> Path:
    path.write_text(table_text(backends, default, **options))
    return path


def worker_pids(parent: int) -> list[int]:
    """The worker processes of a `--workers N` proxy (its children)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on 127.0.0.1:`port` (one per SO_REUSEPORT listener)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            found.add(inode)
    return found


async def workers_listening(parent: int, port: int, workers: int, timeout: float = 20) -> None:
    """Wait until each of the `workers` worker processes holds its own listener on `port`:
    until then the kernel sends every connection to the ones that do."""
    deadline = time.monotonic() + timeout
    while True:
        inodes = listening_inodes(port)
        pids = worker_pids(parent)
        holding = [pid for pid in pids if inodes & socket_inodes(pid)]
        if len(holding) == workers:
            return
        assert time.monotonic() < deadline, f"{len(holding)} of {workers} workers listen"
        await asyncio.sleep(0.05)


def socket_inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


@dataclass
class ProxyProcess:
    """`python -m proxy serve` as a real process on free ports."""

    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
