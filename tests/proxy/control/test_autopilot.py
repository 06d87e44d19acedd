"""proxy.control.autopilot: rollout plans run by real proxy processes (`python -m proxy serve`)
in front of fake backends on loopback that say who answered (X-Backend) with the same body (so
shadow copies match): a healthy plan to the end, aborts on the error and the latency gates, a
restart mid-plan, `--workers 2`, and `max_in_flight` through validate and the admin API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.routing import edit
from proxy.routing.model import Canary
from proxy.routing.parser import load_table
from tests.support import ROOT, fleet, free_port, serve_on_loopback
from tests.support.raw_http import ProxyProcess

StartProxy = Callable[..., ProxyProcess]
TOKEN = "autopilot-admin-token"
ENV = {
    "STRANGLER_ROLLOUT_EVALUATE_EVERY": "0.2",
    "STRANGLER_ACCESS_LOG": "0",
    "STRANGLER_ADMIN_TOKEN": TOKEN,
}
ROUTES = """\
version: 1
backends:
  legacy:
    url: {legacy}
  drf:
    url: {drf}
default: legacy
{top}resources:
  bookings:
    backend: legacy   # the old stack
    fallback: {{backend: legacy, on: [404]}}
    rollout:
      to: drf
      steps: {steps}
      step_seconds: {seconds}
      min_requests: 20
      sticky: "header:X-Client"
      gates: {{min_match: 99, max_error_delta: 0.5, max_p99_ratio: 3}}
{progress}  customers: legacy
"""


@dataclass
class Backends:
    urls: dict[str, str]
    modes: dict[str, str] = field(default_factory=dict)  # name -> ok, fail or slow


@asynccontextmanager
async def backends() -> AsyncIterator[Backends]:
    """`legacy` and `drf`, answering `{"path": ...}` with `X-Backend: <name>`; a mode makes
    one answer 500 (`fail`) or 50 ms late (`slow`)."""
    found = Backends({})
    runners = []

    def app(name: str) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            mode = found.modes.get(name, "ok")
            if mode == "slow":
                await asyncio.sleep(0.05)
            status = 500 if mode == "fail" else 200
            body = {"path": request.path}
            return web.json_response(body, status=status, headers={"X-Backend": name})

        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", answer)
        return application

    try:
        for name in ("legacy", "drf"):
            runner = web.AppRunner(app(name), access_log=None)
            await runner.setup()
            runners.append(runner)
            port = await serve_on_loopback(runner)
            found.urls[name] = f"http://127.0.0.1:{port}"
        yield found
    finally:
        for runner in runners:
            await runner.cleanup()


def write_routes(
    path: Path,
    urls: dict[str, str],
    steps: str,
    *,
    seconds: float = 0.5,
    top: str = "",
    progress: str = "",
) -> Path:
    text = ROUTES.format(steps=steps, seconds=seconds, top=top, progress=progress, **urls)
    path.write_text(text)
    return path


def plan(routes: Path) -> tuple[str, int]:
    rollout = load_table(routes).routes["bookings"].rollout
    assert rollout is not None
    return rollout.state, rollout.step


def entries(routes: Path) -> list[dict[str, Any]]:
    return [e for e in edit.read_audit(edit.audit_path(routes)) if e["resource"] == "bookings"]


def strangler(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "proxy", *args]
    env = {**os.environ, "USER": "ana", "LOGNAME": "ana"}  # the login name getpass reads
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


@dataclass
class Served:
    step: tuple[str, int]  # the plan as the file said when the request was sent
    client: str
    status: int
    backend: str


class Traffic:
    """Clients `c0`..`c199` (sticky by X-Client) sending GET /bookings/N until stopped."""

    def __init__(self, proxy: ProxyProcess, routes: Path) -> None:
        self.proxy, self.routes = proxy, routes
        self.served: list[Served] = []
        self.step = plan(routes)
        self.stopped = False

    async def run(self, concurrency: int = 6) -> None:
        async with aiohttp.ClientSession() as session:
            watcher = asyncio.create_task(self.watch())
            try:
                await asyncio.gather(*(self.client(session, k) for k in range(concurrency)))
            finally:
                watcher.cancel()

    async def watch(self) -> None:
        while True:
            self.step = await asyncio.to_thread(plan, self.routes)
            await asyncio.sleep(0.02)

    async def client(self, session: aiohttp.ClientSession, offset: int) -> None:
        n = offset
        while not self.stopped:
            client = f"c{n % 200}"
            step = self.step
            url = f"{self.proxy.url}/bookings/{n}"
            async with session.get(url, headers={"X-Client": client}) as response:
                await response.read()
                backend = response.headers.get("X-Backend", "?")
                self.served.append(Served(step, client, response.status, backend))
            n += 6


async def until(
    check: Callable[[], bool], timeout: float, what: str, state: Callable[[], object] = str
) -> None:
    """Wait for `check`; on timeout, fail saying what was awaited and `state()` then."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state()}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def driving(proxy: ProxyProcess, routes: Path) -> AsyncIterator[Traffic]:
    traffic = Traffic(proxy, routes)
    task = asyncio.create_task(traffic.run())
    try:
        yield traffic
    finally:
        traffic.stopped = True
        await task


async def metric_lines(proxy: ProxyProcess, prefix: str) -> list[str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.admin_url}/metrics") as response:
            text = await response.text()
    return sorted(line for line in text.splitlines() if line.startswith(prefix))


# -- a healthy plan ---------------------------------------------------------------------------


async def test_a_healthy_rollout_goes_from_shadow_to_flipped_one_audited_step_at_a_time(
    tmp_path: Path, proxy_process: StartProxy
) -> None:
    async with backends() as fakes:
        routes = write_routes(tmp_path / "routes.yaml", fakes.urls, "[shadow, 5, 50, 100]")
        proxy = proxy_process(routes, env=ENV)
        started = strangler("rollout", "start", "bookings", "--routes", str(routes))
        assert (started.returncode, started.stdout) == (
            0,
            "bookings: rollout start (legacy -> drf)\n",
        )
        async with driving(proxy, routes) as traffic:
            await until(lambda: plan(routes)[0] == "done", 40, "the plan to finish")
            done_at = len(traffic.served)
            await until(lambda: len(traffic.served) > done_at + 50, 10, "requests after it")
    actions = [(e["user"], e["action"], e["reason"].partition(":")[0]) for e in entries(routes)]
    assert actions == [
        ("ana", "rollout-start", ""),
        ("autopilot", "rollout-step", "step shadow -> 5%"),
        ("autopilot", "rollout-step", "step 5% -> 50%"),
        ("autopilot", "rollout-step", "step 50% -> 100%"),
        ("autopilot", "rollout-done", "step 100% -> done (backend drf)"),
    ]
    assert "comparisons, match 100.0%" in entries(routes)[1]["reason"]
    assert "requests, 5xx 0.0% vs 0.0%, p99" in entries(routes)[2]["reason"]
    route = load_table(routes).routes["bookings"]
    assert (route.backend, route.canary, route.shadow) == ("drf", None, None)
    assert route.fallback is not None and route.fallback.backend == "legacy"  # kept
    assert {s.status for s in traffic.served} == {200}  # not one failed request
    assert {s.backend for s in traffic.served[done_at + 50 :]} == {"drf"}
    # Sticky: once on the new side a client stays there, step after step.
    for client in {s.client for s in traffic.served}:
        sides = [s.backend for s in traffic.served if s.client == client]
        assert sides == sorted(sides, key=lambda side: side == "drf"), client
    at_5 = {s.client for s in traffic.served if s.step == ("running", 1) and s.backend == "drf"}
    at_50 = [s for s in traffic.served if s.step == ("running", 2) and s.client in at_5]
    assert at_5 and at_50
    assert {s.backend for s in at_50} == {"drf"}


# -- aborts -----------------------------------------------------------------------------------


async def test_a_new_backend_failing_at_50_percent_is_aborted_back_to_the_old_stack(
    tmp_path: Path, proxy_process: StartProxy
) -> None:
    async with backends() as fakes:
        routes = write_routes(tmp_path / "routes.yaml", fakes.urls, "[5, 50, 100]", seconds=1)
        proxy = proxy_process(routes, env=ENV)
        assert strangler("rollout", "start", "bookings", "--routes", str(routes)).returncode == 0
        async with driving(proxy, routes) as traffic:
            await until(lambda: plan(routes) == ("running", 1), 20, "the 50% step")
            fakes.modes["drf"] = "fail"
            failing_at = time.monotonic()
            await until(lambda: plan(routes)[0] == "aborted", 10, "the abort")
            assert time.monotonic() - failing_at < 1.0  # within an evaluation or so
            await until(lambda: traffic.served[-1].step[0] == "aborted", 5, "requests after it")
            await until_reloaded(proxy, traffic)
            after = len(traffic.served)
            await until(lambda: len(traffic.served) > after + 100, 10, "later requests")
        aborts = await metric_lines(proxy, "strangler_rollout_")
    later = traffic.served[after:]
    assert {(s.status, s.backend) for s in later} == {(200, "legacy")}
    abort = entries(routes)[-1]
    assert (abort["user"], abort["action"]) == ("autopilot", "rollout-abort")
    assert abort["reason"].startswith("gate max_error_delta failed at step 50%: ")
    assert "5xx 100.0% vs 0.0%" in abort["reason"]
    route = load_table(routes).routes["bookings"]
    assert route.canary is not None and route.canary.percent == 0
    assert 'strangler_rollout_aborts_total{resource="bookings"} 1.0' in aborts
    assert 'strangler_rollout_state{resource="bookings",state="aborted"} 1.0' in aborts
    assert 'strangler_rollout_state{resource="bookings",state="running"} 0.0' in aborts


async def admin_routes(proxy: ProxyProcess) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.admin_url}/-/routes") as response:
            return await response.json()


async def until_reloaded(proxy: ProxyProcess, traffic: Traffic) -> None:
    """Until the proxy serves the table the file holds (the autopilot reloads it at once)."""
    sha = load_table(traffic.routes).sha256
    deadline = time.monotonic() + 5
    while (await admin_routes(proxy))["sha256"] != sha:
        assert time.monotonic() < deadline, "the proxy did not reload"
        await asyncio.sleep(0.05)


async def test_a_slower_new_backend_is_aborted_on_the_latency_gate(
    tmp_path: Path, proxy_process: StartProxy
) -> None:
    async with backends() as fakes:
        fakes.modes["drf"] = "slow"
        routes = write_routes(tmp_path / "routes.yaml", fakes.urls, "[50, 100]", seconds=5)
        proxy = proxy_process(routes, env=ENV)
        assert strangler("rollout", "start", "bookings", "--routes", str(routes)).returncode == 0
        async with driving(proxy, routes):
            await until(lambda: plan(routes)[0] == "aborted", 15, "the abort")
    abort = entries(routes)[-1]
    assert (abort["user"], abort["action"]) == ("autopilot", "rollout-abort")
    assert abort["reason"].startswith("gate max_p99_ratio failed at step 50%: ")
    assert "5xx 0.0% vs 0.0%" in abort["reason"]


# -- restarts, workers ------------------------------------------------------------------------

STEPS = [
    "step shadow -> 5%",
    "step 5% -> 50%",
    "step 50% -> 100%",
    "step 100% -> done (backend drf)",
]


def step_reasons(routes: Path) -> list[str]:
    return [e["reason"].partition(":")[0] for e in entries(routes) if e["user"] == "autopilot"]


async def test_a_proxy_restarted_mid_plan_resumes_at_its_step(
    tmp_path: Path, proxy_process: StartProxy
) -> None:
    async with backends() as fakes:
        routes = write_routes(tmp_path / "routes.yaml", fakes.urls, "[shadow, 5, 50, 100]")
        assert strangler("rollout", "start", "bookings", "--routes", str(routes)).returncode == 0
        first = proxy_process(routes, env=ENV)
        async with driving(first, routes):
            await until(lambda: plan(routes) == ("running", 2), 20, "the 50% step")
        first.terminate()
        assert first.proc.wait(timeout=10) == 0
        assert step_reasons(routes) == STEPS[:2]
        second = proxy_process(routes, env=ENV)
        async with driving(second, routes) as traffic:
            await until(lambda: plan(routes)[0] == "done", 20, "the plan to finish")
    assert step_reasons(routes) == STEPS  # on from 50%, each step once
    assert {s.status for s in traffic.served} == {200}


async def test_with_two_workers_each_step_is_taken_once(
    tmp_path: Path, proxy_process: StartProxy
) -> None:
    async with backends() as fakes:
        routes = write_routes(tmp_path / "routes.yaml", fakes.urls, "[shadow, 5, 50, 100]")
        proxy = proxy_process(routes, "--workers", "2", env=ENV)
        assert strangler("rollout", "start", "bookings", "--routes", str(routes)).returncode == 0
        async with driving(proxy, routes) as traffic:

            def progress() -> object:  # what a timeout reports (a CI run once stalled here)
                served = Counter((s.step, s.status, s.backend) for s in traffic.served)
                return (plan(routes), step_reasons(routes), sorted(served.items()))

            await until(lambda: plan(routes)[0] == "done", 40, "the plan to finish", progress)
    assert step_reasons(routes) == STEPS
    assert {s.status for s in traffic.served} == {200}


# -- commands, max_in_flight ------------------------------------------------------------------

SHADOWED = "  rooms:\n    backend: legacy\n    shadow: {backend: drf}\n"


def test_validate_refuses_more_resources_in_flight_than_max_in_flight(tmp_path: Path) -> None:
    urls = {"legacy": "http://127.0.0.1:1", "drf": "http://127.0.0.1:2"}
    running = '      state: running\n      step: 0\n      since: "2026-11-28T10:00:00.000Z"\n'
    routes = write_routes(tmp_path / "routes.yaml", urls, "[5, 100]", top="max_in_flight: 1\n",
                          progress=running + SHADOWED)  # fmt: skip
    result = strangler("validate", "--routes", str(routes))
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"{routes}:8: max_in_flight is 1 but 2 resources are in flight: bookings, rooms "
        "(shadow, canary or a running rollout)\n",
    )
    routes.write_text(routes.read_text().replace("max_in_flight: 1", "max_in_flight: 2"))
    assert strangler("validate", "--routes", str(routes)).stdout == "OK\n"


async def test_the_admin_api_refuses_a_start_over_max_in_flight_and_a_flip_pauses_a_plan(
    tmp_path: Path, proxy_process: StartProxy
) -> None:
    urls = {"legacy": f"http://127.0.0.1:{free_port()}", "drf": f"http://127.0.0.1:{free_port()}"}
    routes = write_routes(tmp_path / "routes.yaml", urls, "[5, 100]", seconds=600,
                          top="max_in_flight: 1\n", progress=SHADOWED)  # fmt: skip
    before = routes.read_text()
    proxy = proxy_process(routes, env=ENV)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    start = f"{proxy.admin_url}/-/routes/bookings/rollout/start"
    async with aiohttp.ClientSession() as session:
        async with session.post(start, headers=auth) as response:
            assert response.status == 409
            body = await response.json()
        assert body["message"] == (
            f"Conflict: refused, the table would not be valid: {routes}:8: max_in_flight is 1 "
            "but 2 resources are in flight: bookings, rooms (shadow, canary or a running rollout)"
        )
        assert routes.read_text() == before and entries(routes) == []
        routes.write_text(before.replace("max_in_flight: 1", "max_in_flight: 2"))
        async with session.post(start, headers=auth, json={"reason": "go"}) as response:
            assert response.status == 200
            assert (await response.json())["action"] == "rollout-start"
    assert plan(routes) == ("running", 0)
    flipped = strangler("flip", "bookings", "drf", "--routes", str(routes))
    assert flipped.stdout == (
        "bookings: legacy -> drf\n"
        "bookings: its running rollout plan is paused (rollout resume to go on)\n"
    )
    assert plan(routes) == ("paused", 0)
    resumed = strangler("rollout", "resume", "bookings", "--routes", str(routes))
    assert (resumed.returncode, resumed.stdout) == (0, "bookings: rollout resume (drf -> drf)\n")
    again = strangler("rollout", "resume", "bookings", "--routes", str(routes))
    assert (again.returncode, again.stderr) == (
        1,
        "strangler rollout: cannot resume the rollout of 'bookings': it is running, not paused\n",
    )
    aborted = strangler("rollout", "abort", "bookings", "--routes", str(routes), "--reason", "no")
    assert aborted.returncode == 0
    assert plan(routes) == ("aborted", 0)
    assert load_table(routes).routes["bookings"].canary == Canary("drf", 0.0, "header:X-Client")
    actions = [(e["action"], e["reason"]) for e in entries(routes)]
    assert actions == [
        ("rollout-start", "go"),
        ("flip", ""),
        ("rollout-resume", ""),
        ("rollout-abort", "no"),
    ]


# -- a fleet ----------------------------------------------------------------------------------


async def test_a_plan_on_the_store_runs_once_for_two_replicas(
    tmp_path: Path, etcd_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    async with backends() as fakes:
        text = write_routes(tmp_path / "seed.yaml", fakes.urls, "[5, 100]").read_text()
        await fleet.push(etcd_url, text)
        started = strangler("rollout", "start", "bookings", "--store", etcd_url)
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("bookings: rollout start (legacy -> drf) (revision ")
        with fleet.replicas(tmp_path) as running:
            first, second = running.start(etcd_url, "r1"), running.start(etcd_url, "r2")
            async with aiohttp.ClientSession() as session:
                await fleet.ready(session, first)
                await fleet.ready(session, second)

                async def finished() -> bool:
                    for n in range(40):
                        url = f"{(first, second)[n % 2].url}/bookings/{n}"
                        async with session.get(url, headers={"X-Client": f"c{n}"}) as response:
                            assert response.status == 200
                    entries = await fleet.audit(etcd_url)
                    return entries[-1]["action"] == "rollout-done"

                await fleet.wait_for(finished, 30, "the plan to finish", every=0.05)
    actions = [(e["user"], e["action"]) for e in await fleet.audit(etcd_url) if "resource" in e]
    assert actions == [
        ("ana", "rollout-start"),
        ("autopilot", "rollout-step"),
        ("autopilot", "rollout-done"),
    ]


async def test_in_a_fleet_a_step_is_judged_on_every_replicas_traffic(
    tmp_path: Path, etcd_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """15 requests through each of two replicas: neither alone has the plan's 20, the fleet
    has 30, so the step is taken (on the merged counts), once."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    async with backends() as fakes:
        text = write_routes(tmp_path / "seed.yaml", fakes.urls, "[100]").read_text()
        await fleet.push(etcd_url, text)
        started = strangler("rollout", "start", "bookings", "--store", etcd_url)
        assert started.returncode == 0, started.stderr
        with fleet.replicas(tmp_path) as running:
            first, second = running.start(etcd_url, "r1"), running.start(etcd_url, "r2")
            async with aiohttp.ClientSession() as session:
                await fleet.ready(session, first)
                await fleet.ready(session, second)
                # Both autopilots read the step's first counts (every 0.2 s); nothing shows it.
                await asyncio.sleep(1.5)
                for replica in (first, second):
                    for n in range(15):
                        url = f"{replica.url}/bookings/{n}"
                        async with session.get(url, headers={"X-Client": f"c{n}"}) as response:
                            assert response.status == 200
                            assert response.headers["X-Backend"] == "drf"

                async def finished() -> bool:
                    entries = await fleet.audit(etcd_url)
                    return entries[-1]["action"] == "rollout-done"

                await fleet.wait_for(finished, 10, "the plan to finish on merged counts")
    done = [e for e in await fleet.audit(etcd_url) if e.get("action") == "rollout-done"]
    assert len(done) == 1
    reason = done[0]["reason"]
    assert reason.startswith("step 100% -> done (backend drf): ")
    counted = int(reason.split(": ")[1].split(" ")[0])
    assert 20 <= counted <= 30  # more than either replica saw (15)
