"""Each resource's stage, its readiness verdict and the migration's progress, on the admin port.

GET /-/ready/{resource} is the evidence and verdict of `proxy.migration.readiness` over the
last five minutes (`proxy.observe.pairs`), with any criterion overridden in the query
(`?min_requests=500&min_match=0.999&max_error_delta=0.01&max_p99_ratio=2`)::

    {"resource": "bookings", "stage": "canary 5%", "ready": false, "window_seconds": 300.0,
     "criteria": {...}, "shadow": {"comparisons": 0, "matches": 0, "match_rate": null},
     "debt_shapes": 0, "new": {"backend": "drf", "requests": 120, "errors": 0,
     "error_rate": 0.0, "p99_seconds": 0.04}, "old": {...},
     "checks": [{"name": "errors", "result": "fail", "text": "120 requests, ..."}, ...]}

A resource the table does not list: 404. /-/stats (`lifecycle_json`) carries the same stage
and verdict per resource and the progress; /-/routes the stages and progress. A sampler task
owned by the admin app keeps the history and publishes `strangler_resource_stage`.
Stages use the fallback debt of this process and its workers; verdicts that of the fleet too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from proxy.clock import from_iso
from proxy.control.fleet_admin import FLEET, shared_snapshots
from proxy.migration.readiness import (
    BackendEvidence,
    Criteria,
    Evidence,
    Verdict,
    verdict,
    verdict_json,
)
from proxy.migration.stage import (
    STAGES,
    Stage,
    new_backend,
    progress_text,
    shares,
    stage_counts,
    stage_of,
)
from proxy.observe.debt import merge_debt
from proxy.observe.metrics import SHADOW_RESULTS
from proxy.observe.pairs import PairHistory, PairWindow
from proxy.observe.sharing import DEBT, others
from proxy.observe.stats import quantile
from proxy.routing.model import OTHER_RESOURCE
from proxy.state import ProxyState
from proxy.tasks import Tasks


@dataclass
class Lifecycle:
    state: ProxyState
    history: PairHistory
    sample_every: float


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def add_lifecycle(app: web.Application, state: ProxyState, *, sample_every: float = 1.0) -> None:
    """Mount GET /-/ready/{resource}; keep the history and the stage metric up to date."""
    history = PairHistory.of(state.registry, state.settings.shared_directory)
    app[LIFECYCLE] = Lifecycle(state, history, sample_every)
    app.cleanup_ctx.append(_sampling)
    app.router.add_get("/-/ready/{resource}", ready)


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    lifecycle = app[LIFECYCLE]

    async def run() -> None:
        while True:
            lifecycle.history.sample()
            publish_stages(lifecycle.state, time.time())
            await asyncio.sleep(lifecycle.sample_every)

    tasks = Tasks()
    tasks.start(run(), "lifecycle sampler")
    yield
    await tasks.close()


def publish_stages(state: ProxyState, now: float) -> None:
    current = {name: stage.name for name, stage in stages(state, now).items()}
    state.metrics.resource_stages(current, STAGES)


# -- stages ----------------------------------------------------------------------------------


def stages(state: ProxyState, now: float) -> dict[str, Stage]:
    """Every resource of the table (and "other") with its stage."""
    table, last_debt = state.table, debt_last_seen(state)
    found = {
        name: stage_of(
            route,
            table.default,
            last_debt=last_debt.get(name),
            now=now,
            retire_after=state.settings.retire_after,
        )
        for name, route in table.routes.items()
    }
    found[OTHER_RESOURCE] = stage_of(None, table.default)
    return found


def debt_last_seen(state: ProxyState) -> dict[str, float]:
    """When debt was last recorded per resource, by this process and its workers."""
    seen: dict[str, float] = {}
    for entry in state.debt.entries():
        seen[entry.resource] = max(seen.get(entry.resource, 0.0), entry.last_seen)
    for snapshot in others(state.settings.shared_directory, DEBT):
        for entry in snapshot:
            moment = from_iso(entry["last_seen"])
            seen[entry["resource"]] = max(seen.get(entry["resource"], 0.0), moment)
    return seen


def progress_json(found: Mapping[str, Stage], window: PairWindow) -> dict[str, Any]:
    """`{"stages": {"legacy": 3, ...}, "shares": {"legacy": 0.8, "drf": 0.2},
    "window_seconds": 300.0, "text": "3 legacy, ...; last 5m: legacy 80.0%, drf 20.0%"}`;
    the resources counted are the table's (not "other")."""
    counts = stage_counts(stage for name, stage in found.items() if name != OTHER_RESOURCE)
    backend_shares = shares(window.by_backend())
    return {
        "stages": counts,
        "shares": backend_shares,
        "window_seconds": window.seconds,
        "text": progress_text(counts, backend_shares),
    }


def routes_lifecycle(app: web.Application) -> dict[str, Any]:
    """For GET /-/routes: `{"stages": {resource: "canary 5%"}, "progress": {...}}`."""
    lifecycle = app[LIFECYCLE]
    found = stages(lifecycle.state, time.time())
    return {
        "stages": {name: stage.text for name, stage in found.items()},
        "progress": progress_json(found, lifecycle.history.span()),
    }


async def lifecycle_json(app: web.Application) -> dict[str, Any]:
    """For GET /-/stats: the stage and verdict of every resource, and the progress."""
    lifecycle = app[LIFECYCLE]
    state, window = lifecycle.state, lifecycle.history.span()
    found = stages(state, time.time())
    debt = await debt_entries(app)
    criteria = Criteria()
    verdicts = {
        name: verdict_json(*judge(state, name, found[name], window, debt, criteria), criteria)
        for name in state.table.routes
    }
    return {
        "stages": {name: stage.text for name, stage in found.items()},
        "ready": verdicts,
        "progress": progress_json(found, window),
    }


# -- readiness -------------------------------------------------------------------------------


async def debt_entries(app: web.Application) -> list[dict[str, Any]]:
    """The fallback debt merged over workers, or over the fleet with a store."""
    state = app[LIFECYCLE].state
    entries = state.debt.snapshot()
    fleet = app.get(FLEET)
    shared = (
        others(state.settings.shared_directory, DEBT)
        if fleet is None
        else await shared_snapshots(fleet, DEBT)
    )
    entries += [entry for snapshot in shared for entry in snapshot]
    return merge_debt(entries)


def judge(
    state: ProxyState,
    resource: str,
    stage: Stage,
    window: PairWindow,
    debt: list[dict[str, Any]],
    criteria: Criteria,
) -> tuple[Evidence, Verdict]:
    """The evidence of `resource` over `window`, and its verdict."""
    table = state.table
    route = table.routes.get(resource)
    candidate = new_backend(route, table.default)
    compared = sum(window.shadow.get((resource, result), 0.0) for result in SHADOW_RESULTS)
    evidence = Evidence(
        resource,
        stage.text,
        window.seconds,
        compared,
        window.shadow.get((resource, "match"), 0.0),
        sum(1 for entry in debt if entry["resource"] == resource),
        backend_evidence(window, resource, candidate),
        backend_evidence(window, resource, table.default),
    )
    return evidence, verdict(evidence, criteria)


def backend_evidence(window: PairWindow, resource: str, backend: str | None) -> BackendEvidence:
    counts = window.counts(resource, backend)
    return BackendEvidence(backend, counts.requests, counts.errors, quantile(0.99, counts.buckets))


CRITERIA_TYPES = {
    "min_requests": int,
    "min_match": float,
    "max_error_delta": float,
    "max_p99_ratio": float,
}


def criteria_of(query: Mapping[str, str]) -> Criteria:
    """The default criteria with the query's overrides; ValueError for a bad value."""
    changes: dict[str, Any] = {}
    for name, kind in CRITERIA_TYPES.items():
        if name in query:
            value = kind(query[name])
            if value < 0:
                raise ValueError(name)
            changes[name] = value
    return replace(Criteria(), **changes)


async def ready(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    state, resource = lifecycle.state, request.match_info["resource"]
    if resource not in state.table.routes:
        raise web.HTTPNotFound(reason=f"Not found: no resource {resource!r} in the table.")
    try:
        criteria = criteria_of(request.query)
    except ValueError:
        names = ", ".join(CRITERIA_TYPES)
        raise web.HTTPBadRequest(reason=f"Bad request: {names} must be numbers >= 0.") from None
    window = lifecycle.history.span()
    stage = stages(state, time.time())[resource]
    debt = await debt_entries(request.app)
    evidence, result = judge(state, resource, stage, window, debt, criteria)
    body = verdict_json(evidence, result, criteria)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def with_lifecycle(body: dict[str, Any], figures: Mapping[str, Any]) -> dict[str, Any]:
    """/-/stats `body` with each resource's "stage" and "ready" (its verdict; null for
    "other") and the "progress" of `lifecycle_json` figures."""
    for resource in body["resources"]:
        resource["stage"] = figures["stages"].get(resource["resource"])
        resource["ready"] = figures["ready"].get(resource["resource"])
    body["progress"] = figures["progress"]
    return body
