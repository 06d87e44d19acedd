"""proxy.shadow: copies of GET/HEAD requests compared with the live answers, through the real
listener and forwarder, loopback fakes for both backends; /-/diffs and `strangler diffs`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from proxy.control.admin import make_admin_app
from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.upstream import Upstreams
from proxy.migration.shadow import Shadows, figures, head_field
from proxy.observe.metrics import Metrics
from proxy.routing.routes import parse_table
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.proxy.conftest import (
    Handler,
    RawRequest,
    Upstream,
    exchange,
    read_body,
    read_head,
)
from tests.support import ROOT, free_port

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


def routes(live: str, shadow: str, percent: float = 100, ignore: str | None = None) -> str:
    options = f"backend: shadow, percent: {percent}" + (f", ignore: {ignore}" if ignore else "")
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


@dataclass
class Rig:
    """The real listener and forwarder on a free port, with shadow traffic (workers started)."""

    port: int
    state: ProxyState
    shadows: Shadows
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


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    rigs: list[Rig] = []

    async def start(table_text: str, *, start_workers: bool = True, **options: Any) -> Rig:
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        shadows = Shadows(metrics, **options)
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
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        rig.server.close()
        for conn in list(rig.listener.connections):
            conn.abort()
        rig.upstreams.close()
        await rig.shadows.close()
    await asyncio.sleep(0)


async def test_a_matching_shadow_is_counted_as_a_match(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    rig = await rig_factory(routes(live.url, shadow.url))
    for path in ("/things", "/things/1", "/things/1/parts?page=2"):
        assert (await rig.get(path)).status == 200
    assert (await rig.get("/things/1", "HEAD")).status == 200
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch"), rig.count("error")) == (4, 0, 0)
    # the copy is the live request: same target, same Host and request id
    assert [r.head for r in shadow.requests] == [r.head for r in live.requests]
    assert shadow.requests[2].request_line == b"GET /things/1/parts?page=2 HTTP/1.1"
    assert (b"Host", b"api.example") in shadow.requests[0].headers
    assert head_field(shadow.requests[1].head + b"\r\n", b"x-request-id") == "rid-/things/1"


async def test_live_answer_is_unchanged_and_not_delayed_by_a_slow_shadow(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(fixed({"other": 1}), delay=2.0))
    rig = await rig_factory(routes(live.url, shadow.url))
    started = time.monotonic()
    response = await rig.get("/things/1")
    elapsed = time.monotonic() - started
    assert elapsed < 0.5
    assert response.status == 200
    assert response.body == json.dumps(LIVE_BODY).encode()
    assert response.header(b"Content-Type") == b"application/json"
    # a second request right behind it is not held up by the shadow either
    started = time.monotonic()
    assert (await rig.get("/things/2")).body == json.dumps(LIVE_BODY).encode()
    assert time.monotonic() - started < 0.5
    assert rig.count("mismatch") == 0  # the shadow has not answered yet
    await rig.settled()
    assert rig.count("mismatch") == 2


async def test_only_get_and_head_are_shadowed(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True})))
    rig = await rig_factory(routes(live.url, shadow.url))
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert (await rig.get("/things/1", method, b'{"a": 1}')).status == 200
    assert (await rig.get("/things/1", "DELETE")).status == 200
    assert (await rig.get("/things/1", "GET", b"a body")).status == 200  # a GET with a body
    assert (await rig.get("/plain/1")).status == 200  # a resource without shadow
    await rig.settled()
    assert len(live.requests) == 8
    assert shadow.requests == []
    assert rig.count("match") == rig.count("mismatch") == rig.count("error") == 0


async def test_percent_selects_requests(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True})))
    draws = iter([0.10, 0.25, 0.24, 0.90, 0.0])
    rig = await rig_factory(routes(live.url, shadow.url, percent=25), chance=lambda: next(draws))
    for n in range(5):
        await rig.get(f"/things/{n}")
    await rig.settled()
    assert [r.request_line for r in shadow.requests] == [
        b"GET /things/0 HTTP/1.1",
        b"GET /things/2 HTTP/1.1",
        b"GET /things/4 HTTP/1.1",
    ]
    none = await rig_factory(routes(live.url, shadow.url, percent=0))
    await none.get("/things/9")
    await none.settled()
    assert len(shadow.requests) == 3


async def test_a_full_queue_drops_and_counts(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True})))
    rig = await rig_factory(routes(live.url, shadow.url), start_workers=False, queue_size=2)
    for n in range(5):
        assert (await rig.get(f"/things/{n}")).status == 200
    dropped = rig.state.registry.get_sample_value(
        "strangler_shadow_dropped_total", {"resource": "things"}
    )
    assert dropped == 3
    assert shadow.requests == []
    rig.shadows.start()
    await rig.settled()
    assert rig.count("match") == 2
    assert [r.request_line for r in shadow.requests] == [
        b"GET /things/0 HTTP/1.1",
        b"GET /things/1 HTTP/1.1",
    ]


async def test_a_shadow_backend_down_counts_errors(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    rig = await rig_factory(routes(live.url, f"http://127.0.0.1:{free_port()}"))
    for _ in range(3):
        response = await rig.get("/things/1")
        assert (response.status, response.body) == (200, b'{"ok": true}')
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch"), rig.count("error")) == (0, 0, 3)
    assert rig.shadows.mismatches == {}
    # shadow failures are not the live backends' upstream errors
    assert (
        rig.state.registry.get_sample_value(
            "strangler_upstream_errors_total", {"backend": "shadow", "kind": "connect"}
        )
        is None
    )


async def test_a_shadow_that_times_out_counts_an_error(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True}), delay=5))
    text = routes(live.url, shadow.url).replace(
        f'shadow: {{url: "{shadow.url}"}}', f'shadow: {{url: "{shadow.url}", read_timeout: 0.2}}'
    )
    rig = await rig_factory(text)
    assert (await rig.get("/things/1")).status == 200
    await rig.settled()
    assert rig.count("error") == 1


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


async def test_mismatches_name_the_fields_and_respect_ignore_paths(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(altered))
    rig = await rig_factory(routes(live.url, shadow.url, ignore=IGNORE))
    for path in ("/things/1", "/things/2", "/things/3"):
        await rig.get(path)
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch")) == (2, 1)
    (mismatch,) = rig.shadows.recent("things", 10)
    assert (mismatch.method, mismatch.target, mismatch.request_id) == (
        "GET",
        "/things/2",
        "rid-/things/2",
    )
    assert (mismatch.backend, mismatch.shadow_backend) == ("live", "shadow")
    assert (mismatch.live_status, mismatch.shadow_status) == (200, 200)
    assert [d.text() for d in mismatch.differences] == [
        '$.results[1].contact_email: live="b@example.com" shadow="B@example.com"',
        '$.results[2]: added, shadow={"id": 3}',
    ]


async def test_status_differences_and_big_bodies_by_hash(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    big = {"items": list(range(2000))}
    other = {"items": [*range(1999), 0]}

    def live_answer(request: RawRequest) -> tuple[bytes, bytes]:
        return b"200 OK", json.dumps(big).encode()

    def shadow_answer(request: RawRequest) -> tuple[bytes, bytes]:
        if b"/things/gone" in request.request_line:
            return b"404 Not Found", b'{"http_status_code": 404}'
        if b"/things/same" in request.request_line:
            return b"200 OK", json.dumps(big).encode()
        return b"200 OK", json.dumps(other).encode()

    live = await upstream_factory(json_backend(live_answer))
    shadow = await upstream_factory(json_backend(shadow_answer))
    rig = await rig_factory(routes(live.url, shadow.url), body_cap=1000)
    for path in ("/things/same", "/things/changed", "/things/gone"):
        response = await rig.get(path)
        assert response.body == json.dumps(big).encode()  # the whole body, past the cap
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch")) == (1, 2)
    gone, changed = rig.shadows.recent("things", 10)
    assert [d.where for d in changed.differences] == ["body"]
    size = len(json.dumps(big))
    assert changed.differences[0].live.startswith(f"<{size} bytes, sha256 ")
    assert [d.where for d in gone.differences] == ["status", "body"]
    assert (gone.live_status, gone.shadow_status) == (200, 404)


async def test_kept_mismatches_are_bounded(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"n": 1})))
    shadow = await upstream_factory(json_backend(fixed({"n": 2})))
    rig = await rig_factory(routes(live.url, shadow.url), keep=3)
    for n in range(5):
        await rig.get(f"/things/{n}")
    await rig.settled()
    assert rig.count("mismatch") == 5
    assert [m.target for m in rig.shadows.recent("things", 10)] == [
        "/things/4",
        "/things/3",
        "/things/2",
    ]
    assert [m.target for m in rig.shadows.recent("things", 1)] == ["/things/4"]


# -- /-/diffs, strangler diffs, strangler status -----------------------------------------------


async def mismatching_rig(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> Rig:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(altered))
    rig = await rig_factory(routes(live.url, shadow.url, ignore=IGNORE))
    for path in ("/things/1", "/things/2", "/things/1"):
        await rig.get(path)
    await rig.settled()
    return rig


async def test_diffs_endpoint(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    rig = await mismatching_rig(upstream_factory, rig_factory)
    client = TestClient(TestServer(make_admin_app(rig.state)))
    await client.start_server()
    try:
        body = await (await client.get("/-/diffs?resource=things")).json()
        summary = await (await client.get("/-/diffs")).json()
        unknown = await client.get("/-/diffs?resource=nope")
        unknown_body = await unknown.json()
        bad_limit = await client.get("/-/diffs?resource=things&limit=0")
        plain = await (await client.get("/-/diffs?resource=plain")).json()
    finally:
        await client.close()
    (mismatch,) = body.pop("mismatches")
    assert body == {
        "resource": "things",
        "shadow": {
            "backend": "shadow",
            "percent": 100.0,
            "ignore": ["$.meta.generated_at", "$.results[*].href"],
        },
        "match": 2.0,
        "mismatch": 1.0,
        "error": 0.0,
        "dropped": 0.0,
        "match_rate": 2 / 3,
    }
    assert mismatch.pop("time").endswith("Z")
    assert mismatch == {
        "resource": "things",
        "method": "GET",
        "path": "/things/2",
        "request_id": "rid-/things/2",
        "backend": "live",
        "shadow_backend": "shadow",
        "live_status": 200,
        "shadow_status": 200,
        "differences": [
            {
                "field": "$.results[1].contact_email",
                "kind": "changed",
                "live": "b@example.com",
                "shadow": "B@example.com",
            },
            {"field": "$.results[2]", "kind": "added", "live": None, "shadow": {"id": 3}},
        ],
    }
    assert summary == {
        "resources": {
            "things": {**{k: v for k, v in body.items() if k != "resource"}, "kept": 1},
        }
    }
    assert unknown.status == 404
    assert unknown_body["message"] == "Not found: no resource 'nope'."
    assert bad_limit.status == 400
    assert plain["shadow"] is None and plain["mismatches"] == []


async def run_cli(*args: str) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_strangler_diffs_and_status(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    rig = await mismatching_rig(upstream_factory, rig_factory)
    server = TestServer(make_admin_app(rig.state), host="127.0.0.1", port=free_port())
    await server.start_server()
    admin = str(server.make_url("")).rstrip("/")
    try:
        diffs = await run_cli("diffs", "things", "--admin", admin)
        status = await run_cli("status", "--admin", admin)
        unknown = await run_cli("diffs", "nope", "--admin", admin, "--limit", "5")
    finally:
        await server.close()
    code, out, err = diffs
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == [
        "things: shadowed to shadow at 100%",
        "compared: 2 match, 1 mismatch, 0 error, 0 dropped; match rate 66.7%",
    ]
    assert lines[2] == ""
    assert lines[3].endswith("Z  GET /things/2  request rid-/things/2")
    assert lines[4:] == [
        "  live live 200, shadow shadow 200",
        '  $.results[1].contact_email: live="b@example.com" shadow="B@example.com"',
        '  $.results[2]: added, shadow={"id": 3}',
    ]
    code, out, err = status
    assert (code, err) == (0, "")
    assert out.splitlines()[4:] == [
        "RESOURCE  BACKEND  METHODS  REQ/S  ERRORS  SHADOW",
        "things    live     -        0.0    -       66.7% of 3",
        "plain     live     -        0.0    -       -",
        "(other)   live     -        0.0    -       -",
    ]
    assert unknown == (1, "", "strangler diffs: Not found: no resource 'nope'.\n")


def test_figures_sum_the_counters() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for result in ("match", "match", "match", "error"):
        metrics.shadow_result("a", result)
    metrics.shadow_drop("a")
    metrics.shadow_drop("b")
    found = figures(registry)
    assert found["a"].to_json() == {
        "match": 3.0,
        "mismatch": 0.0,
        "error": 1.0,
        "dropped": 1.0,
        "match_rate": 0.75,
    }
    assert found["b"].match_rate is None


def test_head_field() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\nx-request-id:  abc \r\nX-Request-ID: second\r\n\r\n"
    assert head_field(head, b"x-request-id") == "abc"
    assert head_field(head, b"x-other") is None
