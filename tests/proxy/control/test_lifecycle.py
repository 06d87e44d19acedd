"""proxy.control.lifecycle: GET /-/ready/{resource}, stages and progress in /-/routes and
/-/stats, and strangler_resource_stage, through the admin app (aiohttp test server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.control.admin import make_admin_app
from proxy.control.lifecycle import criteria_of
from proxy.migration.readiness import Criteria
from proxy.state import ProxyState
from tests.support.control import make_state, sample, write

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
  bookings:
    backend: legacy
    canary: {backend: drf, percent: 25}
  customers:
    backend: legacy
    shadow: {backend: drf}
  tours: legacy
  departures:
    backend: drf
    fallback: {backend: legacy, on: [404]}
  itineraries: drf
"""
STAGES = {
    "bookings": "canary 25%",
    "customers": "shadow",
    "tours": "legacy",
    "departures": "new",
    "itineraries": "retired",
    "other": "legacy",
}


@pytest.fixture
def state(tmp_path: Path) -> ProxyState:
    return make_state(write(tmp_path / "routes.yaml", ROUTES))


@pytest.fixture
async def client(aiohttp_client: Client, state: ProxyState) -> TestClient:
    return await aiohttp_client(make_admin_app(state, sample_interval=0.05))


def serve_bookings(state: ProxyState) -> None:
    """300 bookings requests on drf (one 5xx), 900 on legacy (three 5xx), 10 ms each."""
    for backend, count, failed in (("drf", 300, 1), ("legacy", 900, 3)):
        for index in range(count):
            code = 503 if index < failed else 200
            state.metrics.request_done("bookings", backend, "GET", code, 0.01)


async def ready(client: TestClient, resource: str, query: str = "") -> tuple[int, Any]:
    response = await client.get(f"/-/ready/{resource}{query}")
    return response.status, await response.json()


async def test_ready_judges_a_canary_against_the_old_backend(
    client: TestClient, state: ProxyState
) -> None:
    assert (await ready(client, "bookings"))[1]["ready"] is False  # the baseline: nothing yet
    serve_bookings(state)
    status, body = await ready(client, "bookings")
    assert status == 200
    assert body.pop("window_seconds") > 0
    assert body.pop("new") == {
        "backend": "drf", "requests": 300.0, "errors": 1.0, "error_rate": 1 / 300,
        "p99_seconds": pytest.approx(0.00995),
    }  # fmt: skip
    assert body.pop("old") == {
        "backend": "legacy", "requests": 900.0, "errors": 3.0, "error_rate": 3 / 900,
        "p99_seconds": pytest.approx(0.00995),
    }  # fmt: skip
    assert body == {
        "resource": "bookings",
        "stage": "canary 25%",
        "ready": True,
        "criteria": {"min_requests": 200, "min_match": 0.995, "max_error_delta": 0.005,
                     "max_p99_ratio": 1.5},
        "shadow": {"comparisons": 0.0, "matches": 0.0, "match_rate": None},
        "debt_shapes": 0,
        "checks": [
            {"name": "new backend", "result": "ok", "text": "drf against legacy"},
            {"name": "shadow", "result": "skip", "text": "no shadow comparison"},
            {"name": "debt", "result": "ok", "text": "no request shape needed a fallback"},
            {"name": "errors", "result": "ok", "text": "300 requests, 5xx 0.3% vs 0.3%"},
            {"name": "latency", "result": "ok", "text": "p99 10 ms vs 10 ms"},
        ],
    }  # fmt: skip
    status, body = await ready(client, "bookings", "?min_requests=301")
    assert (status, body["ready"], body["criteria"]["min_requests"]) == (200, False, 301)


async def test_ready_counts_shadow_comparisons_and_debt(
    client: TestClient, state: ProxyState
) -> None:
    await ready(client, "customers")
    state.metrics.shadow_comparisons.labels("customers", "match").inc(199)
    state.metrics.shadow_comparisons.labels("customers", "mismatch").inc(1)
    body = (await ready(client, "customers"))[1]
    assert (body["ready"], body["shadow"]) == (
        True, {"comparisons": 200.0, "matches": 199.0, "match_rate": 0.995}
    )  # fmt: skip
    state.debt.record("customers", "GET", "/customers/7/notes", 404, "drf -> legacy", replayed=True)
    body = (await ready(client, "customers"))[1]
    assert (body["ready"], body["debt_shapes"]) == (False, 1)
    assert body["checks"][2] == {
        "name": "debt", "result": "fail", "text": "1 request shape(s) needed a fallback"
    }  # fmt: skip


async def test_ready_of_an_unknown_resource_or_bad_criteria(client: TestClient) -> None:
    status, body = await ready(client, "nope")
    assert (status, body["message"]) == (404, "Not found: no resource 'nope' in the table.")
    status, body = await ready(client, "bookings", "?min_match=high")
    assert (status, body["message"]) == (
        400,
        "Bad request: min_requests, min_match, max_error_delta, max_p99_ratio must be numbers"
        " >= 0.",
    )


def test_criteria_of_a_query() -> None:
    assert criteria_of({}) == Criteria()
    assert criteria_of({"min_requests": "5", "max_p99_ratio": "2"}) == Criteria(
        min_requests=5, max_p99_ratio=2.0
    )
    with pytest.raises(ValueError):
        criteria_of({"min_requests": "-1"})


async def test_routes_carry_stages_and_progress(client: TestClient, state: ProxyState) -> None:
    await client.get("/-/routes")
    serve_bookings(state)
    body = await (await client.get("/-/routes")).json()
    assert body["stages"] == STAGES
    progress = body["progress"]
    assert progress.pop("window_seconds") > 0
    assert progress == {
        "stages": {"legacy": 1, "shadow": 1, "canary": 1, "new": 1, "retired": 1},
        "shares": {"legacy": 0.75, "drf": 0.25},
        "text": (
            "1 legacy, 1 shadow, 1 canary, 1 new, 1 retired; last 5m: legacy 75.0%, drf 25.0%"
        ),
    }


async def test_stats_carry_stage_verdict_and_progress(
    client: TestClient, state: ProxyState
) -> None:
    body = await (await client.get("/-/stats")).json()
    resources = {entry["resource"]: entry for entry in body["resources"]}
    assert {name: entry["stage"] for name, entry in resources.items()} == STAGES
    assert resources["other"]["ready"] is None
    tours = resources["tours"]["ready"]
    assert (tours["ready"], tours["checks"][0]) == (
        False,
        {"name": "new backend", "result": "fail",
         "text": "the entry names no backend but the default"},
    )  # fmt: skip
    assert body["progress"]["text"] == (
        "1 legacy, 1 shadow, 1 canary, 1 new, 1 retired; last 5m: no requests"
    )


async def test_stage_metric_follows_the_table_and_the_debt(
    client: TestClient, state: ProxyState
) -> None:
    async def stage_values(resource: str) -> dict[str, float | None]:
        names = ("legacy", "shadow", "canary", "new", "retired")
        return {
            name: sample(state, "strangler_resource_stage", resource=resource, stage=name)
            for name in names
        }

    expected = {"legacy": 0.0, "shadow": 0.0, "canary": 0.0, "new": 0.0, "retired": 1.0}
    for _ in range(200):  # the sampler publishes every 0.05 s
        if await stage_values("itineraries") == expected:
            break
        await asyncio.sleep(0.02)
    assert await stage_values("itineraries") == expected
    assert (await stage_values("bookings"))["canary"] == 1.0
    state.debt.record("itineraries", "GET", "/itineraries/1", 404, "drf -> legacy",
                      replayed=True, now=time.time())  # fmt: skip
    expected = {**expected, "new": 1.0, "retired": 0.0}
    for _ in range(200):
        if await stage_values("itineraries") == expected:
            break
        await asyncio.sleep(0.02)
    assert await stage_values("itineraries") == expected
