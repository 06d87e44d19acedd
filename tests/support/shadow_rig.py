"""The shadow tests' rig: the real listener and forwarder with shadow traffic, JSON loopback
backends, and the answers the shadow tests compare. Shared by the shadow step's tests
(tests/proxy/migration/test_shadow.py) and the diffs report's (tests/proxy/control/test_diffs.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.pool import Upstreams
from proxy.migration.mismatches import Mismatch
from proxy.migration.shadow import Shadows
from proxy.observe.metrics import Metrics
from proxy.routing.parser import parse_table
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.support.raw_http import Handler, RawRequest, Upstream, exchange, read_body, read_head

Answer = Callable[[RawRequest], tuple[bytes, bytes]]  # request -> (status line rest, JSON body)
Start = Callable[[Callable[[Upstream], Handler]], Awaitable[Upstream]]

LIVE_BODY = {
    "meta": {"generated_at": "2026-11-28T10:00:00Z", "count": 2},
    "results": [
        {"id": 1, "href": "http://api/things/1", "contact_email": "a@example.com"},
        {"id": 2, "href": "http://api/things/2", "contact_email": "b@example.com"},
    ],
}


def json_backend(answer: Answer, *, delay: float = 0.0) -> Callable[[Upstream], Handler]:
    """A keep-alive upstream answering JSON (headers only for HEAD), after `delay` seconds."""

    def make(upstream: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while head := await read_head(reader):
                request = RawRequest(head, await read_body(reader, head))
                upstream.requests.append(request)
                await asyncio.sleep(delay)
                status, body = answer(request)
                writer.write(
                    b"HTTP/1.1 %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % (status, len(body))
                )
                if not request.head.startswith(b"HEAD "):
                    writer.write(body)
                await writer.drain()

        return handle

    return make


def fixed(value: Any, status: bytes = b"200 OK") -> Answer:
    body = json.dumps(value).encode()
    return lambda request: (status, body)


def routes(
    live: str, shadow: str, percent: float = 100, ignore: str | None = None, more: str = ""
) -> str:
    """`more`: further shadow options, e.g. `"writes: dry-run, learn_noise: 1"`."""
    options = f"backend: shadow, percent: {percent}" + (f", ignore: {ignore}" if ignore else "")
    options += f", {more}" if more else ""
    return f"""version: 1
backends:
  live: {{url: "{live}"}}
  shadow: {{url: "{shadow}"}}
default: live
resources:
  things:
    backend: live
    shadow: {{{options}}}
  plain: live
"""


class ShadowsUnderTest(Shadows):
    """The process's shadow traffic, with what the tests wait for and read."""

    async def join(self) -> None:
        """Wait until every queued copy has been compared."""
        await self._queue.join()

    def recent(self, resource: str, limit: int) -> list[Mismatch]:
        """The last `limit` mismatches of `resource`, newest first."""
        kept = sorted(self.kept.of(resource), key=lambda mismatch: mismatch.time, reverse=True)
        return kept[:limit]


@dataclass
class Rig:
    """The real listener and forwarder on a free port, with shadow traffic (workers started)."""

    port: int
    state: ProxyState
    shadows: ShadowsUnderTest
    upstreams: Upstreams
    listener: Listener
    server: asyncio.AbstractServer
    clients: list[TestClient] = field(default_factory=list)

    async def get(self, path: str, method: str = "GET", body: bytes = b"") -> Any:
        head = f"{method} {path} HTTP/1.1\r\nHost: api.example\r\nX-Request-ID: rid-{path}\r\n"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        data = head.encode() + b"\r\n" + body
        return await exchange(self.port, data, head_request=method == "HEAD")

    async def settled(self) -> None:
        await asyncio.wait_for(self.shadows.join(), 10)

    def count(self, result: str, resource: str = "things") -> float:
        value = self.state.registry.get_sample_value(
            "strangler_shadow_comparisons_total", {"resource": resource, "result": result}
        )
        return value or 0.0


@asynccontextmanager
async def rigs() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """Starts rigs (`await start(routes_text, **Shadows options)`); stops them all at the end."""
    started: list[Rig] = []

    async def start(table_text: str, *, start_workers: bool = True, **options: Any) -> Rig:
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        shadows = ShadowsUnderTest(metrics, **options)
        state = ProxyState(
            Settings(access_log=False),
            parse_table(table_text, environ={}),
            metrics,
            registry,
            time.time(),
            shadows=shadows,
        )
        if start_workers:
            shadows.start()
        upstreams = Upstreams()
        listener = Listener(Forwarder(state, upstreams))
        server = await asyncio.get_running_loop().create_server(listener.protocol, "127.0.0.1", 0)
        rig = Rig(server.sockets[0].getsockname()[1], state, shadows, upstreams, listener, server)
        started.append(rig)
        return rig

    try:
        yield start
    finally:
        for rig in started:
            rig.server.close()
            for conn in list(rig.listener.connections):
                conn.abort()
            rig.upstreams.close()
            await rig.shadows.close()
        await asyncio.sleep(0)


IGNORE = '["$.meta.generated_at", "$.results[*].href"]'


def altered(request: RawRequest) -> tuple[bytes, bytes]:
    body = json.loads(json.dumps(LIVE_BODY))
    body["meta"]["generated_at"] = "2026-11-28T10:00:01Z"  # ignored
    for item in body["results"]:
        item["href"] = item["href"].replace("api", "drf")  # ignored
    if request.request_line.startswith(b"GET /things/2 "):
        body["results"][1]["contact_email"] = "B@example.com"
        body["results"].append({"id": 3})
    return b"200 OK", json.dumps(body).encode()
