"""proxy.control.dashboard: the page, its files and its JSON through the admin app (aiohttp test
server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from proxy.clock import from_iso as instant
from proxy.clock import iso_time
from proxy.control.admin import make_admin_app
from proxy.control.dashboard import ASSET_TYPES, load_assets, recent_audit
from proxy.control.plans_view import rollout_json
from proxy.routing.parser import parse_table
from proxy.state import ProxyState
from tests.support.control import make_state, write

TOKEN = "dashboard-token-9f3c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = Callable[..., Awaitable[TestClient]]

ROUTES = """\
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings: legacy
  itineraries:
    backend: legacy
    methods: {GET: drf}
    canary: {backend: drf, percent: 10, sticky: "header:X-Application-Key"}
    shadow: {backend: drf, percent: 50}
    fallback: {backend: legacy, on: [501, 404]}
    guard: {max_error_rate: 0.05, min_requests: 50, window: 60}
  tours:
    backend: drf
    guard: {max_p99_ms: 250, min_requests: 10, window: 30, dry_run: true}
"""
NO_SHADOW = {
    "configured": False, "backend": None, "percent": None, "writes": False, "match_rate": None,
    "comparisons": 0, "worst": None,
}  # fmt: skip
NO_FALLBACK = {"configured": False, "backend": None, "on": [], "count": 0.0, "recent": 0.0}
NO_LIVE_GUARD = {
    "watching": None, "figures": None, "would_roll_back": None, "fired": None, "error": None
}  # fmt: skip
NO_GUARD = {
    "configured": False, "state": "off", "rollbacks": 0.0, "max_error_rate": None,
    "max_p99_ms": None, "min_requests": None, "window": None, "dry_run": None, **NO_LIVE_GUARD,
}  # fmt: skip


@pytest.fixture
def state(tmp_path: Path) -> ProxyState:
    return make_state(write(tmp_path / "routes.yaml", ROUTES), admin_token=TOKEN)


@pytest.fixture
async def client(aiohttp_client: Client, state: ProxyState) -> TestClient:
    return await aiohttp_client(make_admin_app(state))


def envelope(status: int, message: str) -> dict[str, object]:
    return {"http_status_code": status, "message": message, "errors": []}


# -- the page and its files ------------------------------------------------------------------


async def test_the_page_is_html_with_a_strict_policy_and_no_token(client: TestClient) -> None:
    response = await client.get("/-/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await response.text()
    assert html.startswith("<!doctype html>")
    assert '<script src="static/dashboard.js" defer></script>' in html
    assert '<link rel="stylesheet" href="static/dashboard.css">' in html
    assert TOKEN not in html
    assert "<script>" not in html and "style=" not in html  # nothing inline: the policy forbids it


async def test_a_json_client_gets_the_endpoint_list(client: TestClient) -> None:
    response = await client.get("/-/", headers={"Accept": "application/json"})
    assert response.status == 200
    endpoints = (await response.json())["endpoints"]
    assert {"GET /-/", "GET /-/stats", "GET /-/audit?limit=N"} <= set(endpoints)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")],
)
async def test_static_files(client: TestClient, name: str, content_type: str) -> None:
    response = await client.get(f"/-/static/{name}")
    assert response.status == 200
    assert response.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert await response.read() == files("proxy.control").joinpath("static", name).read_bytes()


@pytest.mark.parametrize(
    "path", ["/-/static/nope.js", "/-/static/dashboard.html", "/-/static/..%2Fadmin.py"]
)
async def test_only_the_page_files_are_served(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert (response.status, await response.json()) == (404, envelope(404, "Not Found"))


def test_the_files_come_from_the_package() -> None:
    static = files("proxy.control").joinpath("static")
    assert sorted(item.name for item in static.iterdir()) == sorted(ASSET_TYPES)
    assets = load_assets()
    assert {name: asset.content_type for name, asset in assets.items()} == ASSET_TYPES
    assert all(asset.body for asset in assets.values())


# -- /-/stats --------------------------------------------------------------------------------


async def test_stats_shows_the_table_and_its_configuration(
    client: TestClient, state: ProxyState
) -> None:
    response = await client.get("/-/stats")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["generated_at"].endswith("Z")
    assert (body["window_seconds"], body["step_seconds"], body["history_seconds"]) == (
        10.0, 5.0, 120.0
    )  # fmt: skip
    table = body["table"]
    assert table.pop("loaded_at").endswith("Z")
    assert table == {
        "version": 1,
        "source": str(state.settings.routes),
        "sha256": state.table.sha256,
        "default": "legacy",
        "last_reload_error": None,
    }
    resources = {entry.pop("resource"): entry for entry in body["resources"]}
    assert list(resources) == ["bookings", "itineraries", "tours", "other"]
    stages = {name: entry.pop("stage") for name, entry in resources.items()}
    assert stages == {
        "bookings": "legacy", "itineraries": "canary 10%", "tours": "retired", "other": "legacy"
    }  # fmt: skip
    verdicts = {name: entry.pop("ready") for name, entry in resources.items()}
    assert (verdicts["other"], verdicts["itineraries"]["ready"]) == (None, False)
    assert body["progress"]["stages"] == {
        "legacy": 1, "shadow": 0, "canary": 1, "new": 0, "retired": 1
    }  # fmt: skip
    idle = {"requests_per_second": 0.0, "error_rate": None}
    plans = {name: entry.pop("rollout") for name, entry in resources.items()}
    assert plans == {"bookings": None, "itineraries": None, "tours": None, "other": None}
    groups = {name: entry.pop("group") for name, entry in resources.items()}
    assert (groups, body["groups"]) == (dict.fromkeys(plans), [])  # no groups: see test_groups_view
    assert resources["bookings"] == {
        "listed": True, "backend": "legacy", "methods": {}, **idle, "canary": None,
        "shadow": NO_SHADOW, "fallback": NO_FALLBACK, "guard": NO_GUARD,
    }  # fmt: skip
    assert resources["itineraries"] == {
        "listed": True, "backend": "legacy", "methods": {"GET": "drf"}, **idle,
        "canary": {"backend": "drf", "percent": 10.0, "sticky": "header:X-Application-Key"},
        "shadow": {**NO_SHADOW, "configured": True, "backend": "drf", "percent": 50.0},
        "fallback": {**NO_FALLBACK, "configured": True, "backend": "legacy", "on": [404, 501]},
        "guard": {
            "configured": True, "state": "armed", "rollbacks": 0.0, "max_error_rate": 0.05,
            "max_p99_ms": None, "min_requests": 50, "window": 60.0, "dry_run": False,
            **NO_LIVE_GUARD,
        },
    }  # fmt: skip
    assert resources["tours"]["guard"]["state"] == "dry run"
    assert resources["other"] == {**resources["bookings"], "listed": False}
    backends = {entry["backend"]: entry for entry in body["backends"]}
    assert list(backends) == ["legacy", "drf"]
    assert backends["drf"]["url"] == "http://127.0.0.1:8000"
    assert (backends["drf"]["requests_per_second"], backends["drf"]["p99_seconds"]) == (0.0, None)
    assert len(backends["drf"]["series"]["requests_per_second"]) == 24


async def test_stats_reads_live_figures_from_the_registry(
    client: TestClient, state: ProxyState
) -> None:
    metrics = state.metrics
    await client.get("/-/stats")  # a first snapshot: everything below lands in the window
    for _ in range(9):
        metrics.request_done("itineraries", "drf", "GET", 200, 0.004)
    metrics.request_done("itineraries", "drf", "GET", 502, 0.004)
    metrics.request_done("bookings", "legacy", "POST", 201, 0.3)
    metrics.shadow_comparisons.labels("itineraries", "match").inc(3)
    metrics.shadow_comparisons.labels("itineraries", "mismatch").inc()
    metrics.fallbacks.labels("itineraries", "drf", "legacy", "404").inc(2)
    metrics.guard_rollbacks.labels("tours").inc()
    metrics.in_flight("drf").inc()
    await asyncio.sleep(0.25)  # the tracker takes at most one snapshot per 0.2 s
    body = await (await client.get("/-/stats")).json()
    resources = {entry["resource"]: entry for entry in body["resources"]}
    itineraries = resources["itineraries"]
    assert itineraries["requests_per_second"] > 0
    assert itineraries["error_rate"] == 0.1
    assert itineraries["shadow"]["match_rate"] == 0.75
    assert itineraries["shadow"]["comparisons"] == 4.0
    assert (itineraries["fallback"]["count"], itineraries["fallback"]["recent"]) == (2.0, 2.0)
    assert resources["tours"]["guard"]["state"] == "rolled back"
    assert resources["tours"]["guard"]["rollbacks"] == 1.0
    assert resources["bookings"]["error_rate"] == 0.0
    backends = {entry["backend"]: entry for entry in body["backends"]}
    drf = backends["drf"]
    assert drf["error_rate"] == 0.1
    assert drf["in_flight"] == 1.0
    # 10 observations in (0.0025, 0.005]
    assert drf["p50_seconds"] == pytest.approx(0.00375)
    assert drf["p99_seconds"] == pytest.approx(0.004975)
    assert backends["legacy"]["p50_seconds"] == pytest.approx(0.25 + 0.25 * 0.5)


async def test_stats_follow_a_flip_and_report_a_reload_error(
    client: TestClient, state: ProxyState
) -> None:
    response = await client.put("/-/routes/bookings", json={"backend": "drf"}, headers=AUTH)
    assert response.status == 200
    state.last_reload_error = "routes.yaml:3: oops"
    body = await (await client.get("/-/stats")).json()
    assert body["resources"][0]["backend"] == "drf"
    assert body["table"]["sha256"] == state.table.sha256
    assert body["table"]["last_reload_error"] == "routes.yaml:3: oops"


PLANS = """\
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings:
    backend: legacy
    canary: {{backend: drf, percent: 25, sticky: "header:X-Client"}}
    rollout:
      to: drf
      steps: [shadow, 1, 5, 25, 50, 100]
      step_seconds: 600
      min_requests: 200
      state: running
      step: 3
      since: "{since}"
  tours:
    backend: legacy
    shadow: {{backend: drf}}
    rollout:
      to: drf
      steps: [shadow, 50, 100]
      step_seconds: 30
      min_requests: 10
      state: {tours_state}
      step: 0
      since: "2026-11-28T10:00:00.000Z"
  customers:
    backend: legacy
    rollout: {{to: drf, steps: [5, 100]}}
"""


async def test_stats_carry_each_plan_running_paused_or_pending(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    since = iso_time(time.time() - 130)
    text = PLANS.format(since=since, tours_state="paused")
    state = make_state(write(tmp_path / "routes.yaml", text), admin_token=TOKEN)
    client = await aiohttp_client(make_admin_app(state))
    before = time.time()
    body = await (await client.get("/-/stats")).json()
    after = time.time()
    plans = {entry["resource"]: entry["rollout"] for entry in body["resources"]}
    running = plans["bookings"]
    on_step = running.pop("seconds_on_step")
    began = instant(since)
    assert began is not None
    assert round(before - began, 1) <= on_step <= round(after - began, 1)
    assert running == {
        "state": "running", "to": "drf", "step": 4, "steps": 6, "current": "25%",
        "labels": ["shadow", "1%", "5%", "25%", "50%", "100%"], "since": since,
        "step_seconds": 600.0, "min_requests": 200,
    }  # fmt: skip
    paused = plans["tours"]
    assert paused.pop("seconds_on_step") >= round(before - 1795860000.0, 1)  # 2026-11-28T10:00Z
    assert paused == {
        "state": "paused", "to": "drf", "step": 1, "steps": 3, "current": "shadow",
        "labels": ["shadow", "50%", "100%"], "since": "2026-11-28T10:00:00.000Z",
        "step_seconds": 30.0, "min_requests": 10,
    }  # fmt: skip
    assert plans["customers"] == {
        "state": "pending", "to": "drf", "step": 1, "steps": 2, "current": "5%",
        "labels": ["5%", "100%"], "since": None, "seconds_on_step": None,
        "step_seconds": 600.0, "min_requests": 200,
    }  # fmt: skip
    assert plans["other"] is None


async def test_stats_follow_a_pause_through_the_admin_api(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    text = PLANS.format(since=iso_time(), tours_state="running")
    state = make_state(write(tmp_path / "routes.yaml", text), admin_token=TOKEN)
    client = await aiohttp_client(make_admin_app(state))
    response = await client.post("/-/routes/bookings/rollout/pause", json={}, headers=AUTH)
    assert response.status == 200
    body = await (await client.get("/-/stats")).json()
    states = {e["resource"]: e["rollout"] and e["rollout"]["state"] for e in body["resources"]}
    assert states == {
        "bookings": "paused", "tours": "running", "customers": "pending", "other": None
    }  # fmt: skip


def test_seconds_on_step_count_from_since() -> None:
    table = parse_table(PLANS.format(since="2026-11-28T10:00:00.000Z", tours_state="aborted"))
    began = instant("2026-11-28T10:00:00.000Z")
    assert began == 1795860000.0
    plan, tours = table.routes["bookings"].rollout, table.routes["tours"].rollout
    assert plan is not None and tours is not None
    assert rollout_json(plan, began + 130.04)["seconds_on_step"] == 130.0
    assert rollout_json(plan, began - 5)["seconds_on_step"] == 0.0  # a clock behind the table's
    assert (rollout_json(tours, began)["state"], rollout_json(tours, began)["current"]) == (
        "aborted", "shadow"
    )  # fmt: skip


# -- /-/audit --------------------------------------------------------------------------------


async def test_audit_is_empty_before_any_flip(client: TestClient) -> None:
    response = await client.get("/-/audit")
    assert (response.status, await response.json()) == (200, {"entries": []})


async def test_audit_lists_the_last_changes_newest_first(client: TestClient) -> None:
    for backend in ("drf", "legacy", "drf"):
        body = {"backend": backend, "reason": f"to {backend}"}
        response = await client.put("/-/routes/tours", json=body, headers=AUTH)
        assert response.status == 200
    response = await client.post("/-/routes/tours/rollback", json={"reason": "undo"}, headers=AUTH)
    assert response.status == 200
    entries = (await (await client.get("/-/audit")).json())["entries"]
    moves = [(e["action"], e["from"], e["to"], e["reason"]) for e in entries]
    # the first PUT found tours already on drf: nothing written, nothing audited
    assert moves == [
        ("rollback", "drf", "legacy", "undo"),
        ("flip", "legacy", "drf", "to drf"),
        ("flip", "drf", "legacy", "to legacy"),
    ]
    assert all(e["user"] == "admin" and e["resource"] == "tours" for e in entries)
    limited = (await (await client.get("/-/audit?limit=2")).json())["entries"]
    assert limited == entries[:2]


@pytest.mark.parametrize("limit", ["0", "501", "-1", "x", "2.5", ""])
async def test_audit_limit_must_be_sane(client: TestClient, limit: str) -> None:
    response = await client.get(f"/-/audit?limit={limit}")
    assert response.status == 400
    assert await response.json() == envelope(
        400, "Bad request: limit must be an integer from 1 to 500."
    )


def test_recent_audit_skips_broken_lines_and_keeps_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "routes.audit.jsonl"
    lines = [json.dumps({"resource": "r", "n": n}) for n in range(50)]
    path.write_text("\n".join([*lines[:10], "{torn", *lines[10:]]) + "\n")
    assert [entry["n"] for entry in recent_audit(path, 3)] == [49, 48, 47]
    assert len(recent_audit(path, 500)) == 50
