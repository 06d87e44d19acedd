"""Fixtures for the data plane: raw loopback upstreams, an in-process proxy, raw HTTP clients.

Fake upstreams are real asyncio servers on loopback that record the exact bytes they received.
The in-process proxy is the real listener/forwarder on a free port; tests that need a real
process (signals, workers) start `python -m proxy serve` instead (see `ProxyProcess`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
from tests.support.raw_http import (
    Handler,
    InProcessProxy,
    ProxyProcess,
    Upstream,
    table_text,
)


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
