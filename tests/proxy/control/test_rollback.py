"""proxy.control.rollback: the guard's timer rolling a failing resource back, in process and
through `python -m proxy serve --workers 3`; dry runs; a rollback that cannot be written."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from proxy.control.rollback import GuardTimer, check, run_guards
from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.pool import Upstreams
from proxy.observe.metrics import Metrics
from proxy.routing import edit
from proxy.routing.parser import load_table
from proxy.routing.reload import reload_now
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.support.raw_http import (
    ProxyProcess,
    RawRequest,
    Upstream,
    canned,
    respond,
    workers_listening,
)

UpstreamFactory = Callable[[Callable[[Upstream], object]], Awaitable[Upstream]]


def guard_timer(state: ProxyState) -> GuardTimer:
    """The guard's timer over an in-process proxy's state, wired as `proxy.server` wires it."""
    return GuardTimer(
        state.guards,
        state.settings.routes,
        state.metrics,
        table=lambda: state.table,
        reload=lambda: reload_now(state),
        draining=lambda: state.draining,
    )


# -- the rollback, in process --------------------------------------------------------------------

ROUTES = """\
version: 1
backends:
  legacy:
    url: {legacy}
  drf:
    url: {drf}
default: legacy
resources:
  bookings:
    backend: legacy
    guard: {{{guard}}}   # watched once flipped
  customers: legacy
"""


def routes_file(tmp_path: Path, legacy: str, drf: str, guard: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(legacy=legacy, drf=drf, guard=guard))
    for resource in ("bookings", "customers"):
        edit.flip(path, resource, "drf", user="ana", reason="migrate")
    return path


def audit(routes: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in edit.audit_path(routes).read_text().splitlines()]


def failing_bookings(request: RawRequest) -> bytes:
    if request.request_line.startswith(b"GET /bookings"):
        return respond(b"500 Internal Server Error", b'{"http_status_code": 500}')
    return respond(body=b"drf")


async def start_proxy(routes: Path) -> tuple[ProxyState, asyncio.Server, Upstreams]:
    registry = CollectorRegistry()
    settings = Settings(routes=routes, access_log=False)
    state = ProxyState(settings, load_table(routes), Metrics(registry), registry, time.time())
    upstreams = Upstreams()
    listener = Listener(Forwarder(state, upstreams))
    server = await asyncio.get_running_loop().create_server(listener.protocol, "127.0.0.1", 0)
    await check(guard_timer(state))  # armed from the table and the audit log
    return state, server, upstreams


async def get(port: int, path: str, count: int) -> list[tuple[int, bytes]]:
    answers = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                answers.append((response.status, await response.read()))
    return answers


@pytest.fixture
async def two_backends(upstream_factory: UpstreamFactory) -> tuple[Upstream, Upstream]:
    legacy = await upstream_factory(canned(respond(body=b"legacy")))
    drf = await upstream_factory(canned(failing_bookings))
    return legacy, drf


async def test_the_guard_rolls_a_failing_resource_back_and_nothing_else(
    tmp_path: Path, two_backends: tuple[Upstream, Upstream], caplog: pytest.LogCaptureFixture
) -> None:
    legacy, drf = two_backends
    guard = "max_error_rate: 0.05, min_requests: 20, window: 5"
    routes = routes_file(tmp_path, legacy.url, drf.url, guard)
    before = routes.read_text()
    state, server, upstreams = await start_proxy(routes)
    port = server.sockets[0].getsockname()[1]
    task = asyncio.create_task(run_guards(guard_timer(state), every=0.05))
    try:
        assert {status for status, _ in await get(port, "/bookings/1", 19)} == {500}
        assert await get(port, "/customers/1", 30) == [(200, b"drf")] * 30
        await asyncio.sleep(0.2)
        assert routes.read_text() == before  # 19 requests: below min_requests
        await get(port, "/bookings/1", 1)
        for _ in range(40):
            if state.table.backend_for("bookings") == "legacy":
                break
            await asyncio.sleep(0.05)
        assert await get(port, "/bookings/1", 2) == [(200, b"legacy")] * 2
        assert await get(port, "/customers/1", 1) == [(200, b"drf")]
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        server.close()
        upstreams.close()
    assert routes.read_text() == before.replace("    backend: drf\n", "    backend: legacy\n")
    last = audit(routes)[-1]
    assert len(audit(routes)) == 3
    assert {key: last[key] for key in ("user", "resource", "from", "to", "action", "reason")} == {
        "user": "guard", "resource": "bookings", "from": "drf", "to": "legacy",
        "action": "rollback", "reason": "guard: error rate 100.0% > 5% over 5 s, 20 requests",
    }  # fmt: skip
    value = state.registry.get_sample_value(
        "strangler_guard_rollbacks_total", {"resource": "bookings"}
    )
    assert value == 1.0
    assert state.guards.describe("bookings")["state"] == "rolled back"
    assert "guard: rolled bookings back from drf to legacy" in caplog.text


async def test_a_fired_guard_does_not_fire_again_until_the_resource_is_flipped_anew(
    tmp_path: Path, two_backends: tuple[Upstream, Upstream]
) -> None:
    legacy, drf = two_backends
    routes = routes_file(tmp_path, legacy.url, drf.url, "max_error_rate: 0.5, min_requests: 3")
    state, server, upstreams = await start_proxy(routes)
    port = server.sockets[0].getsockname()[1]
    try:
        await get(port, "/bookings/1", 3)
        await check(guard_timer(state))
        assert state.table.backend_for("bookings") == "legacy"
        await get(port, "/bookings/1", 3)  # legacy answers; nothing is watched
        await check(guard_timer(state))
        assert len(audit(routes)) == 3
        edit.flip(routes, "bookings", "drf", user="ana", reason="try again")
        await reload_now(state)
        await check(guard_timer(state))  # re-armed, with a fresh window
        assert state.guards.describe("bookings")["state"] == "armed"
        await get(port, "/bookings/1", 3)
        await check(guard_timer(state))
    finally:
        server.close()
        upstreams.close()
    actions = [(entry["user"], entry["action"]) for entry in audit(routes)]
    assert actions[2:] == [("guard", "rollback"), ("ana", "flip"), ("guard", "rollback")]


async def test_p99_over_the_limit_rolls_back(
    tmp_path: Path, upstream_factory: UpstreamFactory
) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            await asyncio.sleep(0.06)
            writer.write(respond(body=b"slow"))
            await writer.drain()

    legacy = await upstream_factory(canned(respond(body=b"legacy")))
    drf = await upstream_factory(lambda upstream: slow)
    routes = routes_file(tmp_path, legacy.url, drf.url, "max_p99_ms: 50, min_requests: 4")
    state, server, upstreams = await start_proxy(routes)
    try:
        await get(server.sockets[0].getsockname()[1], "/bookings/1", 4)
        await check(guard_timer(state))
    finally:
        server.close()
        upstreams.close()
    reason = audit(routes)[-1]["reason"]
    assert re.fullmatch(r"guard: p99 ([6-9]\d|1\d\d) ms > 50 ms over 60 s, 4 requests", reason), (
        reason
    )
    assert state.table.backend_for("bookings") == "legacy"


async def test_dry_run_only_reports(
    tmp_path: Path, two_backends: tuple[Upstream, Upstream], caplog: pytest.LogCaptureFixture
) -> None:
    legacy, drf = two_backends
    guard = "max_error_rate: 0.05, min_requests: 3, dry_run: true"
    routes = routes_file(tmp_path, legacy.url, drf.url, guard)
    before = routes.read_text()
    state, server, upstreams = await start_proxy(routes)
    port = server.sockets[0].getsockname()[1]
    try:
        await get(port, "/bookings/1", 3)
        await check(guard_timer(state))
        await get(port, "/bookings/1", 1)
        await check(guard_timer(state))  # still exceeded: reported once
    finally:
        server.close()
        upstreams.close()
    assert routes.read_text() == before and len(audit(routes)) == 2
    live = state.guards.describe("bookings")
    reason = "guard: error rate 100.0% > 5% over 60 s, 4 requests"
    assert (live["state"], live["would_roll_back"]) == ("dry run", reason)
    trips = state.registry.get_sample_value(
        "strangler_guard_dry_run_trips_total", {"resource": "bookings"}
    )
    assert trips == 1.0
    assert state.registry.get_sample_value("strangler_guard_rollbacks_total", {}) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "strangler.guard"]
    assert warnings == [
        "guard: error rate 100.0% > 5% over 60 s, 3 requests (dry run: bookings stays on drf)"
    ]


async def test_a_rollback_that_cannot_be_written_is_reported_once(
    tmp_path: Path, two_backends: tuple[Upstream, Upstream], caplog: pytest.LogCaptureFixture
) -> None:
    legacy, drf = two_backends
    routes = routes_file(tmp_path, legacy.url, drf.url, "max_error_rate: 0.05, min_requests: 2")
    state, server, upstreams = await start_proxy(routes)
    try:
        await get(server.sockets[0].getsockname()[1], "/bookings/1", 2)
        broken = routes.read_text() + "oops: [\n"
        routes.write_text(broken)
        await check(guard_timer(state))
        await check(guard_timer(state))
    finally:
        server.close()
        upstreams.close()
    assert routes.read_text() == broken
    assert state.guards.describe("bookings")["state"] == "failed"
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and "cannot roll" in r.message
    ]
    assert len(errors) == 1


# -- the rollback, with workers ------------------------------------------------------------------


async def test_three_workers_roll_back_exactly_once(
    tmp_path: Path,
    two_backends: tuple[Upstream, Upstream],
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    legacy, drf = two_backends
    routes = routes_file(tmp_path, legacy.url, drf.url, "max_error_rate: 0.05, min_requests: 5")
    proxy = proxy_process(routes, "--workers", "3", env={"STRANGLER_ACCESS_LOG": "0"})
    await workers_listening(proxy.proc.pid, proxy.port, 3)
    # Right after an evaluation instant (every 0.5 s on the wall clock), so that every worker
    # has its share of the burst when they all evaluate at the next one.
    await asyncio.sleep(0.5 - time.time() % 0.5 + 0.02)
    connector = aiohttp.TCPConnector(force_close=True, limit=20)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.get(f"{proxy.url}/bookings/1") as response:
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(90)))
        assert set(statuses) <= {500, 200}
        for _ in range(60):
            if "bookings:\n    backend: legacy" in routes.read_text():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # every worker has evaluated since
        async with session.get(f"{proxy.admin_url}/metrics") as response:
            exposition = await response.text()
    guard_lines = [entry for entry in audit(routes) if entry["user"] == "guard"]
    assert len(guard_lines) == 1, guard_lines
    assert guard_lines[0]["from"] == "drf" and guard_lines[0]["to"] == "legacy"
    assert 'strangler_guard_rollbacks_total{resource="bookings"} 1.0' in exposition
    proxy.terminate()
    assert proxy.proc.wait(timeout=15) == 0
    log = (tmp_path / "proxy.log").read_text()
    tripped = log.count("rolling bookings back from drf")
    assert log.count("guard: rolled bookings back from drf to legacy") == 1
    assert log.count("guard: bookings was already moved off drf") == tripped - 1
    assert tripped >= 2, log  # the race through the lock really happened
