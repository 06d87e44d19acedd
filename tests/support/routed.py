"""An in-process proxy (the real listener and forwarder) on a routes.yaml text of the test's own,
for features that need several backends and long-form routes (canary, fallback)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.pool import Upstreams
from proxy.observe.accesslog import AccessLog
from proxy.observe.metrics import Metrics
from proxy.routing.parser import parse_table
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.support.raw_http import InProcessProxy


def routes_yaml(backends: Mapping[str, str], default: str, resources: str = "") -> str:
    """A routes.yaml text; `resources` is the YAML under `resources:` (indented two spaces)."""
    lines = ["version: 1", "backends:"]
    for name, url in backends.items():
        lines += [f"  {name}:", f"    url: {url}"]
    lines.append(f"default: {default}")
    if resources:
        lines += ["resources:", resources.rstrip("\n")]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def routed_proxy(
    text: str, settings: Settings | None = None, log: io.StringIO | None = None
) -> AsyncIterator[InProcessProxy]:
    """The proxy serving `text` on a free loopback port; the access log goes to `log`."""
    table = parse_table(text)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.routes_loaded(table)
    state = ProxyState(settings or Settings(), table, metrics, registry, time.time())
    upstreams = Upstreams()
    access_log = AccessLog(log or io.StringIO())
    listener = Listener(Forwarder(state, upstreams, access_log))
    server = await asyncio.get_running_loop().create_server(listener.protocol, "127.0.0.1", 0)
    try:
        yield InProcessProxy(server.sockets[0].getsockname()[1], state, upstreams, listener)
    finally:
        server.close()
        for conn in list(listener.connections):
            conn.abort()
        upstreams.close()
        await asyncio.sleep(0)


def log_lines(proxy: InProcessProxy, log: io.StringIO) -> list[dict[str, Any]]:
    """The access-log lines written so far (flushed now)."""
    proxy.listener.forwarder.access_log.flush()
    return [json.loads(line) for line in log.getvalue().splitlines()]


def sample(proxy: InProcessProxy, name: str, **labels: str) -> float | None:
    return proxy.state.registry.get_sample_value(name, labels)
