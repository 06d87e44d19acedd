"""proxy.guard: the rolling window, the verdict, arming from the audit log, the rollback itself
(in process and through `python -m proxy serve --workers 3`)."""

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

from proxy.dataplane.forward import Forwarder
from proxy.dataplane.listener import Listener
from proxy.http.upstream import Upstreams
from proxy.migration.guard import (
    EDGES_MS,
    GUARD_USER,
    Figures,
    Guards,
    Window,
    check,
    edges_for,
    quantile,
    run_guards,
    verdict,
)
from proxy.observe.metrics import Metrics
from proxy.routing import edit
from proxy.routing.reload import reload_now
from proxy.routing.routes import Guard, load_table, parse_table
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.proxy.conftest import ProxyProcess, RawRequest, Upstream, canned, respond

ERROR_GUARD = Guard(max_error_rate=0.05, max_p99_ms=None, min_requests=50, window=60, dry_run=False)
P99_GUARD = Guard(max_error_rate=None, max_p99_ms=500, min_requests=20, window=60, dry_run=False)
UpstreamFactory = Callable[[Callable[[Upstream], object]], Awaitable[Upstream]]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fill(window: Window, requests: int, errors: int = 0, ms: float = 10.0) -> None:
    for number in range(requests):
        window.observe(number < errors, ms)


# -- the window ----------------------------------------------------------------------------------


def test_window_counts_requests_errors_and_p99() -> None:
    window = Window(60, clock=Clock())
    fill(window, 300, errors=21, ms=8.0)
    fill(window, 12, ms=900.0)
    figures = window.figures()
    assert (figures.requests, figures.errors) == (312, 21)
    assert figures.error_rate == pytest.approx(21 / 312)
    assert figures.p99_ms is not None and 861.0 < figures.p99_ms <= 1024.0  # 900 ms: (861, 1024]


def test_window_forgets_what_is_older_than_the_window() -> None:
    clock = Clock()
    window = Window(10, clock=clock)  # 30 slots of 1/3 s
    fill(window, 40, errors=40)
    clock.now += 5
    fill(window, 10)
    assert (window.figures().requests, window.figures().errors) == (50, 40)
    clock.now += 5.5  # the first 40 are more than 10 s old
    assert (window.figures().requests, window.figures().errors) == (10, 0)
    clock.now += 10
    assert window.figures() == Figures(0, 0, None)
    fill(window, 3)
    assert len(window.slots) == 1  # old slots are dropped when a new one starts


def test_window_keeps_at_most_one_slot_per_slot_width() -> None:
    clock = Clock()
    window = Window(3, clock=clock)
    for _ in range(200):
        clock.now += 0.05
        fill(window, 1)
    assert len(window.slots) <= 30
    assert 55 <= window.figures().requests <= 61  # 2.9 s to 3 s of 20 requests per second


def test_quantile_is_exact_at_an_edge() -> None:
    edges = edges_for(P99_GUARD)
    assert 500 in edges and set(EDGES_MS) <= set(edges)
    window = Window(60, edges, clock=Clock())
    fill(window, 99, ms=499.0)
    fill(window, 1, ms=501.0)
    figures = window.figures()
    assert figures.p99_ms is not None and figures.p99_ms <= 500
    fill(window, 1, ms=501.0)  # 2 of 101 above 500 ms: the 100th is above it
    figures = window.figures()
    assert figures.p99_ms is not None and 500 < figures.p99_ms < 520


def test_quantile_of_a_histogram() -> None:
    assert quantile([0, 0, 0], [1.0, 2.0], 0.99) is None
    assert quantile([0, 10, 0], [1.0, 2.0], 0.99) == 2.0
    assert quantile([100, 0, 0], [1.0, 2.0], 0.5) == 0.5
    assert quantile([0, 0, 4], [1.0, 2.0], 0.99) == 2.0  # above every edge: the last edge


# -- the verdict ---------------------------------------------------------------------------------


def test_error_rate_over_the_limit_gives_the_reason_with_the_figures() -> None:
    reason = verdict(ERROR_GUARD, Figures(500, 36, 12.0))
    assert reason == "guard: error rate 7.2% > 5% over 60 s, 500 requests"


def test_p99_over_the_limit_gives_the_reason_with_the_figures() -> None:
    reason = verdict(P99_GUARD, Figures(312, 0, 850.4))
    assert reason == "guard: p99 850 ms > 500 ms over 60 s, 312 requests"


@pytest.mark.parametrize(
    ("guard", "figures"),
    [
        (ERROR_GUARD, Figures(49, 49, 5.0)),  # below min_requests
        (ERROR_GUARD, Figures(100, 5, 5.0)),  # exactly at the limit
        (ERROR_GUARD, Figures(100, 0, 99_000.0)),  # no p99 limit
        (P99_GUARD, Figures(100, 100, 500.0)),  # no error limit; p99 at the limit
        (P99_GUARD, Figures(19, 0, 900.0)),  # below min_requests
    ],
)
def test_within_the_limits_nothing_fires(guard: Guard, figures: Figures) -> None:
    assert verdict(guard, figures) is None


def test_min_requests_is_the_first_count_that_fires() -> None:
    assert verdict(ERROR_GUARD, Figures(50, 50, 1.0)) == (
        "guard: error rate 100.0% > 5% over 60 s, 50 requests"
    )


# -- arming from the table and the audit log -----------------------------------------------------

TABLE = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
resources:
  bookings:
    backend: drf
    guard: {max_error_rate: 0.05, min_requests: 5, window: 10}
  customers:
    backend: legacy
    guard: {max_error_rate: 0.05, min_requests: 5, window: 10}
  tours: drf
"""


def flip_entry(resource: str, old: str, new: str, user: str = "ana") -> dict[str, str]:
    return {"resource": resource, "from": old, "to": new, "action": "flip", "user": user}


def rollback_entry(resource: str, old: str, new: str, user: str = GUARD_USER) -> dict[str, str]:
    return {
        "resource": resource, "from": old, "to": new, "action": "rollback", "user": user,
        "time": "2026-11-28T10:00:00.000Z", "reason": "guard: error rate 9.0% > 5% ...",
    }  # fmt: skip


def test_only_a_resource_with_somewhere_to_roll_back_to_is_watched() -> None:
    guards = Guards()
    guards.sync(parse_table(TABLE), [])
    assert list(guards.watches) == ["bookings"]  # customers is where a rollback would send it
    assert guards.watches["bookings"].backend == "drf"
    assert guards.describe("bookings")["state"] == "armed"
    assert guards.describe("customers")["state"] == "off"
    assert guards.describe("tours")["state"] == "off"


def test_observe_counts_only_the_watched_backend_of_a_guarded_resource() -> None:
    guards = Guards()
    guards.sync(parse_table(TABLE), [])
    guards.observe("bookings", "drf", 500, 0.01)
    guards.observe("bookings", "drf", 200, 0.01)
    guards.observe("bookings", "legacy", 500, 0.01)  # a fallback or a canary's other side
    guards.observe("tours", "drf", 500, 0.01)
    guards.observe("other", "legacy", 502, 0.01)
    assert guards.watches["bookings"].window.figures().requests == 2
    assert guards.describe("bookings")["window"] == {
        "requests": 2,
        "errors": 1,
        "error_rate": 0.5,
        "p99_ms": 11.3,
    }  # fmt: skip  (both in the bucket (9.5, 11.3]: the p99 is its top)


def test_a_guard_that_fired_stays_quiet_until_the_resource_is_flipped_anew() -> None:
    guards = Guards()
    history = [
        flip_entry("customers", "legacy", "drf"),
        rollback_entry("customers", "drf", "legacy"),
    ]
    table = parse_table(TABLE.replace("backend: legacy", "backend: drf"))
    guards.sync(parse_table(TABLE), history)
    assert "customers" not in guards.watches
    assert guards.describe("customers")["state"] == "rolled back"
    assert guards.describe("customers")["fired"] == {
        "time": "2026-11-28T10:00:00.000Z", "reason": "guard: error rate 9.0% > 5% ..."
    }  # fmt: skip
    guards.sync(table, [*history, flip_entry("customers", "legacy", "drf")])
    assert guards.watches["customers"].backend == "drf"
    assert guards.describe("customers")["state"] == "armed"


def test_after_a_manual_rollback_the_guard_watches_what_is_left_to_undo() -> None:
    history = [
        flip_entry("bookings", "legacy", "drf"),
        flip_entry("bookings", "drf", "legacy"),
        rollback_entry("bookings", "legacy", "drf", user="ana"),
    ]
    guards = Guards()
    guards.sync(parse_table(TABLE), history)
    assert guards.watches["bookings"].backend == "drf"  # a rollback would go to legacy


def test_a_window_survives_a_reload_that_does_not_change_its_guard() -> None:
    guards = Guards()
    guards.sync(parse_table(TABLE), [])
    window = guards.watches["bookings"].window
    guards.sync(parse_table(TABLE.replace("tours: drf", "tours: legacy")), [])
    assert guards.watches["bookings"].window is window
    guards.sync(parse_table(TABLE.replace("window: 10}", "window: 20}")), [])
    assert guards.watches["bookings"].window is not window


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
    await check(state, reload_now)  # armed from the table and the audit log
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
    task = asyncio.create_task(run_guards(state, reload_now, every=0.05))
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
        await check(state, reload_now)
        assert state.table.backend_for("bookings") == "legacy"
        await get(port, "/bookings/1", 3)  # legacy answers; nothing is watched
        await check(state, reload_now)
        assert len(audit(routes)) == 3
        edit.flip(routes, "bookings", "drf", user="ana", reason="try again")
        await reload_now(state)
        await check(state, reload_now)  # re-armed, with a fresh window
        assert state.guards.describe("bookings")["state"] == "armed"
        await get(port, "/bookings/1", 3)
        await check(state, reload_now)
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
        await check(state, reload_now)
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
        await check(state, reload_now)
        await get(port, "/bookings/1", 1)
        await check(state, reload_now)  # still exceeded: reported once
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
        await check(state, reload_now)
        await check(state, reload_now)
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
    await asyncio.sleep(1.0)  # every worker up and listening
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
