"""Fixtures for the data plane: raw loopback upstreams, an in-process proxy, raw HTTP clients.

Fake upstreams are real asyncio servers on loopback that record the exact bytes they received.
The in-process proxy is the real listener/forwarder on a free port; tests that need a real
process (signals, workers) start `python -m proxy serve` instead (see `ProxyProcess`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.pool import Upstreams
from proxy.observe.metrics import Metrics
from proxy.routing.parser import parse_table
from proxy.settings import Settings
from proxy.state import ProxyState
from stack.ports import wait_port
from tests.support import ROOT, free_port

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


@pytest.fixture
async def upstream_factory() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    """`start(make)`, or `start(make, tls=context)` for an https upstream."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(
        make: Callable[[Upstream], Handler], tls: ssl.SSLContext | None = None
    ) -> Upstream:
        upstream: Upstream

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            upstream.connections += 1
            upstream.open_connections += 1
            try:
                await make(upstream)(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                upstream.open_connections -= 1
                writer.close()
                tasks.discard(task)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream(port, server, scheme="http" if tls is None else "https")
        servers.append(server)
        return upstream

    yield start
    for server in servers:
        server.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[..., Awaitable[InProcessProxy]]]:
    started: list[tuple[asyncio.Server, InProcessProxy]] = []

    async def start(
        upstream_url: str = "",
        settings: Settings | None = None,
        *,
        text: str | None = None,
        **options: object,
    ) -> InProcessProxy:
        """A proxy whose one backend `app` is `upstream_url` (each option a line of it), or
        whose table is the routes.yaml `text`."""
        table = parse_table(text or table_text({"app": upstream_url}, "app", **options))
        registry = CollectorRegistry()
        state = ProxyState(settings or Settings(), table, Metrics(registry), registry, time.time())
        upstreams = Upstreams()
        listener = Listener(Forwarder(state, upstreams))
        server = await asyncio.get_running_loop().create_server(listener.protocol, "127.0.0.1", 0)
        proxy = InProcessProxy(server.sockets[0].getsockname()[1], state, upstreams, listener)
        started.append((server, proxy))
        return proxy

    yield start
    for server, proxy in started:
        server.close()
        for conn in list(proxy.listener.connections):
            conn.abort()
        proxy.upstreams.close()
    await asyncio.sleep(0)


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


@pytest.fixture
def proxy_process(tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(routes: Path, *args: str, env: dict[str, str] | None = None) -> ProxyProcess:
        port, admin_port = free_port(), free_port()
        command = [
            sys.executable, "-m", "proxy", "serve", "--routes", str(routes),
            "--port", str(port), "--admin-port", str(admin_port), *args,
        ]  # fmt: skip
        with open(tmp_path / "proxy.log", "ab") as log:
            proc = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **(env or {})}, stderr=log
            )
        procs.append(proc)
        wait_port(port)
        wait_port(admin_port)
        return ProxyProcess(proc, port, admin_port)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
