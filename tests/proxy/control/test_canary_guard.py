"""proxy.control.rollback on a canary: `python -m proxy serve --workers 2` in front of two fake
backends on loopback, the new one failing for bookings only. The guard watches each canary from
the moment it has a share (no flip), against the routed side's live baseline; the failing canary
is set to 0 in one audited edit, the healthy one is left alone. In process: a canary failing
no more than the old stack is left alone; a dry run only reports."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from proxy.control.rollback import GuardTimer, check
from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.pool import Upstreams
from proxy.observe.metrics import Metrics
from proxy.routing import edit
from proxy.routing.parser import load_table
from proxy.routing.reload import reload_now
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.support.fleet import fake_backends
from tests.support.raw_http import ProxyProcess, RawRequest, Upstream, canned, respond

UpstreamFactory = Callable[[Callable[[Upstream], object]], Awaitable[Upstream]]

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
    canary: {{backend: drf, percent: 50}}   # the new stack takes half
    guard: {{max_error_rate: 0.05, min_requests: 5, window: 5}}
  customers:
    backend: legacy
    canary: {{backend: drf, percent: 50}}
    guard: {{max_error_rate: 0.05, min_requests: 5, window: 5}}
"""


def drf_failing_bookings(request: RawRequest) -> bytes:
    if request.request_line.startswith(b"GET /bookings"):
        return respond(b"503 Service Unavailable", b"drf")
    return respond(body=b"drf")


async def answers(session: aiohttp.ClientSession, url: str, count: int) -> list[tuple[int, str]]:
    async def one() -> tuple[int, str]:
        async with session.get(url) as response:
            return response.status, await response.text()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_a_failing_canary_is_stopped_once_and_a_healthy_one_left_alone(
    tmp_path: Path,
    upstream_factory: UpstreamFactory,
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    legacy = await upstream_factory(canned(respond(body=b"legacy")))
    drf = await upstream_factory(canned(drf_failing_bookings))
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, drf=drf.url))
    before = routes.read_text()
    proxy = proxy_process(routes, "--workers", "2", env={"STRANGLER_ACCESS_LOG": "0"})
    connector = aiohttp.TCPConnector(force_close=True, limit=10)
    async with aiohttp.ClientSession(connector=connector) as session:
        seen: set[tuple[int, str]] = set()
        deadline = time.monotonic() + 15
        while "percent: 0}" not in routes.read_text():
            assert time.monotonic() < deadline, "the failing canary was not stopped"
            seen |= set(await answers(session, f"{proxy.url}/bookings/1", 10))
            assert set(await answers(session, f"{proxy.url}/customers/1", 10)) <= {
                (200, "legacy"),
                (200, "drf"),
            }
        assert seen == {(200, "legacy"), (503, "drf")}  # it was armed without a flip
        in_a_row = 0
        # Every worker has reloaded the table: 60 legacy answers in a row (20 were not enough:
        # with one worker still on the 50% canary, three answers in four are legacy anyway).
        while in_a_row < 60:
            assert time.monotonic() < deadline, "still served by the canary"
            status_text = (await answers(session, f"{proxy.url}/bookings/1", 1))[0]
            in_a_row = in_a_row + 1 if status_text == (200, "legacy") else 0
        assert await answers(session, f"{proxy.url}/bookings/1", 60) == [(200, "legacy")] * 60
        customers = set(await answers(session, f"{proxy.url}/customers/1", 60))
        assert customers == {(200, "legacy"), (200, "drf")}
        await asyncio.sleep(1.0)  # both workers evaluated twice since: nothing more happens
        async with session.get(f"{proxy.admin_url}/metrics") as response:
            exposition = await response.text()
    expected = before.replace(
        "canary: {backend: drf, percent: 50}   # the new stack takes half",
        "canary: {backend: drf, percent: 0}   # the new stack takes half",
    )
    assert routes.read_text() == expected
    canary = load_table(routes).routes["customers"].canary
    assert canary is not None and canary.percent == 50.0
    entries = [json.loads(line) for line in edit.audit_path(routes).read_text().splitlines()]
    assert len(entries) == 1, entries
    entry = entries[0]
    assert {key: entry[key] for key in ("user", "resource", "from", "to", "action")} == {
        "user": "guard", "resource": "bookings", "from": "drf", "to": "legacy",
        "action": "stop_canary",
    }  # fmt: skip
    assert re.fullmatch(
        r"guard: canary drf error rate 100\.0% > 5% and legacy's 0\.0% over 5 s, \d+ requests"
        r" \(canary 50% -> 0%\)",
        entry["reason"],
    ), entry["reason"]
    assert 'strangler_guard_rollbacks_total{resource="bookings"} 1.0' in exposition
    assert 'strangler_guard_rollbacks_total{resource="customers"}' not in exposition
    proxy.terminate()
    assert proxy.proc.wait(timeout=15) == 0
    log = (tmp_path / "proxy.log").read_text()
    assert log.count("guard: stopped the canary of bookings on drf") == 1
    tripped = log.count("stopping the canary of bookings on drf")
    assert log.count("guard: the canary of bookings on drf was already changed") == tripped - 1


# -- in process: the live baseline, dry runs -----------------------------------------------------


async def in_process(routes: Path) -> tuple[ProxyState, GuardTimer, asyncio.Server, Upstreams]:
    registry = CollectorRegistry()
    settings = Settings(routes=routes, access_log=False)
    state = ProxyState(settings, load_table(routes), Metrics(registry), registry, time.time())
    upstreams = Upstreams()
    server = await asyncio.get_running_loop().create_server(
        Listener(Forwarder(state, upstreams)).protocol, "127.0.0.1", 0
    )
    timer = GuardTimer(
        state.guards, routes, state.metrics, lambda: state.table, lambda: reload_now(state)
    )
    await check(timer)  # armed from the table
    return state, timer, server, upstreams


async def test_a_canary_failing_as_much_as_the_old_stack_is_left_alone(tmp_path: Path) -> None:
    async with fake_backends("legacy", "drf") as urls:  # both answer 503 on paths ending /fail
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(**urls))
        before = routes.read_text()
        state, timer, server, upstreams = await in_process(routes)
        port = server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                statuses = await answers(session, f"http://127.0.0.1:{port}/bookings/1/fail", 40)
            assert {status for status, _ in statuses} == {503}
            side = state.guards.canaries["bookings"]
            assert side.baseline is not None
            canary_side, baseline = side.window.figures(), side.baseline.figures()
            assert canary_side.requests >= 5 and canary_side.requests + baseline.requests == 40
            assert (
                canary_side.errors == canary_side.requests and baseline.errors == baseline.requests
            )
            await check(timer)
        finally:
            server.close()
            upstreams.close()
    assert routes.read_text() == before
    assert not edit.audit_path(routes).exists()
    assert state.guards.describe("bookings")["state"] == "armed"


async def test_a_dry_run_canary_guard_only_reports(
    tmp_path: Path, upstream_factory: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = await upstream_factory(canned(respond(body=b"legacy")))
    drf = await upstream_factory(canned(drf_failing_bookings))
    routes = tmp_path / "routes.yaml"
    text = ROUTES.format(legacy=legacy.url, drf=drf.url)
    routes.write_text(text.replace("window: 5}", "window: 5, dry_run: true}"))
    before = routes.read_text()
    state, timer, server, upstreams = await in_process(routes)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            while state.guards.canaries["bookings"].window.figures().requests < 5:
                await answers(session, f"http://127.0.0.1:{port}/bookings/1", 5)
        await check(timer)
        await check(timer)  # still exceeded: reported once
    finally:
        server.close()
        upstreams.close()
    assert routes.read_text() == before and not edit.audit_path(routes).exists()
    live = state.guards.describe("bookings")
    assert live["state"] == "dry run"
    assert live["canary"]["would_stop"].startswith("guard: canary drf error rate 100.0% > 5%")
    trips = state.registry.get_sample_value(
        "strangler_guard_dry_run_trips_total", {"resource": "bookings"}
    )
    assert trips == 1.0
    warnings = [r.getMessage() for r in caplog.records if r.name == "strangler.guard"]
    assert len(warnings) == 1
    assert warnings[0].endswith("(dry run: the canary of bookings on drf goes on)")
