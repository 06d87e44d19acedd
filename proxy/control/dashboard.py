"""The live dashboard on the admin port: one page, its static files, and the JSON it polls.

No build step: `proxy/control/static/` holds plain HTML, CSS and JavaScript, shipped as package
data and read through importlib.resources. The page polls two endpoints every few seconds and
changes routes through the admin API itself (PUT /-/routes/{resource},
POST /-/routes/{resource}/rollback, POST /-/routes/{resource}/rollout/{action}, and a group's
POST /-/flip and POST /-/rollback) with the token the operator types in (kept in the tab's
sessionStorage, never in the page). GET /-/stats also lists the groups
(`proxy.control.groups_view`).

GET /-/                 the page (text/html); GET /-/static/{name} its CSS and JavaScript.

GET /-/stats            the table in force and live figures::

    {"generated_at": "2026-11-28T10:00:00Z", "window_seconds": 10.0, "step_seconds": 5.0,
     "history_seconds": 120.0,
     "table": {"version": 1, "source": "routes.yaml", "sha256": "…", "default": "legacy",
               "loaded_at": "2026-11-28T09:58:00Z", "last_reload_error": null},
     "resources": [
       {"resource": "bookings", "listed": true, "backend": "drf", "methods": {"GET": "legacy"},
        "stage": "new", "ready": {...},         # GET /-/ready/{resource} (null for "other")
        "rollout": {"state": "running", "current": "25%", ...},  # plans_view (null: no plan)
        "requests_per_second": 2.5, "error_rate": 0.0,          # over the last window_seconds
        "canary": {"backend": "drf", "percent": 10.0, "sticky": "header:X-Application-Key"},
        "shadow": {"configured": true, "backend": "drf", "percent": 100.0,
                   "writes": false, "match_rate": 0.98,
                   "comparisons": 50,                           # in the window; null: none
                   "worst": "status"},                          # worst class since start
        "fallback": {"configured": true, "backend": "legacy", "on": [404, 501],
                     "count": 3, "recent": 1},                  # since start / in the window
        "guard": {"configured": true, "state": "armed", "rollbacks": 0, "dry_run": false,
                  "max_error_rate": 0.05, "max_p99_ms": null, "min_requests": 50,
                  "window": 60.0, "watching": "drf",        # live, in this process:
                  "figures": {"requests": 312, "errors": 4, "error_rate": 0.0128,
                              "p99_ms": 41.2},              # the guard's window now
                  "would_roll_back": null,                  # dry run: the reason
                  "fired": null,                            # {"time", "reason"} from audit
                  "error": null}},                          # a rollback that failed
       {"resource": "other", "listed": false, "backend": "legacy", ...}],  # unlisted resources
     "backends": [
       {"backend": "drf", "url": "http://127.0.0.1:8000", "in_flight": 0.0,
        "requests_per_second": 2.5, "error_rate": 0.0, "p50_seconds": 0.004,
        "p99_seconds": 0.02,                                    # over the last window_seconds
        "series": {"requests_per_second": [...], "error_rate": [...],
                   "p50_seconds": [...], "p99_seconds": [...]}}],
     "progress": {"stages": {"legacy": 3, ...}, "shares": {"legacy": 0.8, "drf": 0.2},
                  "window_seconds": 300.0, "text": "3 legacy, ...; last 5m: ..."}}
    # series: history_seconds / step_seconds steps of step_seconds, oldest first; null where
    # there is no data yet (or, for ratios and quantiles, no request in that step)

Rates and ratios are null when nothing was counted. Quantiles come from the deltas of the
strangler_request_duration_seconds buckets (`proxy.observe.stats`). Shadow, fallback and guard
figures read strangler_shadow_comparisons_total, strangler_fallbacks_total and
strangler_guard_rollbacks_total; they stay at zero until the proxy counts something there.
Guard `state`: "off" (none configured), "idle" (configured, but the resource is where a
rollback would send it), "armed", "dry run", "rolled back" (the audit log's latest entry for the
resource is a guard rollback, or one was counted within the last two minutes) or "failed" (the
rollback could not be written). Live figures are those of the worker answering
(`proxy.migration.guard`).

GET /-/audit?limit=N    the last N flips and rollbacks of `routes.audit.jsonl` (default 20, at
most 500), newest first: `{"entries": [{"time": …, "user": …, "resource": …, "from": …,
"to": …, "reason": …, "action": "flip"}]}` (a group's entry also has "group", "members" and
"kept": `proxy.routing.group_edit`); with a store (`--store`), of the store's audit log, each
entry with its "revision".
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from proxy.clock import iso_time
from proxy.control.fleet_admin import FLEET
from proxy.control.fleet_admin import recent_audit as fleet_audit
from proxy.control.groups_view import with_groups
from proxy.control.lifecycle import lifecycle_json, with_lifecycle
from proxy.control.plans_view import with_plans
from proxy.migration.diff import worst
from proxy.observe.stats import (
    ResourceCounts,
    StatsTracker,
    Window,
    ratio,
    series_values,
    shadow_match_rate,
)
from proxy.routing import edit
from proxy.routing.model import OTHER_RESOURCE, Guard, Route, RouteTable
from proxy.state import ProxyState
from proxy.tasks import Tasks

ASSET_TYPES = {
    "dashboard.html": "text/html",
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
}
AUDIT_LIMIT = 20
AUDIT_MAX = 500
GUARD_RECENT = 120.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@dataclass
class Dashboard:
    state: ProxyState
    tracker: StatsTracker
    assets: Mapping[str, Asset]
    sample_every: float


DASHBOARD = web.AppKey("dashboard", Dashboard)


def load_assets() -> dict[str, Asset]:
    """The page's files from the installed package (fails loudly if they were not shipped)."""
    static = files("proxy.control").joinpath("static")
    return {
        name: Asset(static.joinpath(name).read_bytes(), content_type)
        for name, content_type in ASSET_TYPES.items()
    }


def add_dashboard(
    app: web.Application,
    state: ProxyState,
    *,
    window: float = 10.0,
    step: float = 5.0,
    sample_every: float = 1.0,
) -> None:
    """Mount the dashboard's routes on the admin `app` and sample the metrics in the background.

    GET /-/ itself is left to the admin app, which answers it with `page()`.
    """
    directory = state.settings.shared_directory
    tracker = StatsTracker.of(state.registry, directory, window=window, step=step)
    app[DASHBOARD] = Dashboard(state, tracker, load_assets(), sample_every)
    app.cleanup_ctx.append(_sampling)
    app.router.add_get("/-/static/{name}", static_file)
    app.router.add_get("/-/stats", stats)
    app.router.add_get("/-/audit", audit)


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    """The sampler task lives as long as the admin app (its cleanup context owns it)."""
    dashboard = app[DASHBOARD]

    async def run() -> None:
        while True:
            dashboard.tracker.sample()
            await asyncio.sleep(dashboard.sample_every)

    tasks = Tasks()
    tasks.start(run(), "dashboard sampler")
    yield
    await tasks.close()


# -- the page --------------------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    return asset_response(request.app[DASHBOARD].assets["dashboard.html"])


async def static_file(request: web.Request) -> web.Response:
    asset = request.app[DASHBOARD].assets.get(request.match_info["name"])
    if asset is None or asset.content_type == "text/html":
        raise web.HTTPNotFound()
    return asset_response(asset)


def asset_response(asset: Asset) -> web.Response:
    response = web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-cache"
    return response


# -- the data --------------------------------------------------------------------------------


async def stats(request: web.Request) -> web.Response:
    dashboard = request.app[DASHBOARD]
    now = time.time()
    body = stats_json(dashboard.state, dashboard.tracker, now)
    with_plans(body, dashboard.state.table, now)  # each resource's rollout plan (or null)
    with_groups(body, dashboard.state.table)  # "groups", and each resource's "group"
    with_lifecycle(body, await lifecycle_json(request.app))  # stage, verdict, progress
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def audit(request: web.Request) -> web.Response:
    raw = request.query.get("limit", str(AUDIT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= AUDIT_MAX:
        raise web.HTTPBadRequest(
            reason=f"Bad request: limit must be an integer from 1 to {AUDIT_MAX}."
        )
    fleet = request.app.get(FLEET)
    if fleet is not None:  # the fleet's audit log is the store's
        entries = await fleet_audit(fleet, int(raw))
    else:
        path = edit.audit_path(request.app[DASHBOARD].state.settings.routes)
        entries = await asyncio.to_thread(recent_audit, path, int(raw))
    return web.json_response({"entries": entries}, headers={"Cache-Control": "no-store"})


def recent_audit(path: Path, limit: int) -> list[dict[str, Any]]:
    """The last `limit` entries of the audit log, newest first."""
    return list(reversed(deque(edit.read_audit(path), maxlen=limit)))


def stats_json(state: ProxyState, tracker: StatsTracker, now: float) -> dict[str, Any]:
    table = state.table
    recent = tracker.recent()
    series = tracker.series()
    guard_span = tracker.span(GUARD_RECENT)
    names = [*table.backends, *sorted(set(recent.backends) - set(table.backends))]
    latest = tracker.samples[-1]
    return {
        "generated_at": iso_time(now, "seconds"),
        "window_seconds": tracker.window,
        "step_seconds": tracker.step,
        "history_seconds": tracker.history,
        "table": {
            "version": table.version,
            "source": table.source,
            "sha256": table.sha256,
            "default": table.default,
            "loaded_at": iso_time(state.loaded_at, "seconds"),
            "last_reload_error": state.last_reload_error,
        },
        "resources": [
            resource_json(
                table,
                name,
                recent,
                guard_span,
                latest.resources.get(name),
                state.guards.describe(name),
            )
            for name in [*table.routes, OTHER_RESOURCE]
        ],
        "backends": [
            backend_json(table, name, recent, series, latest.in_flight.get(name, 0.0))
            for name in names
        ],
    }


def resource_json(
    table: RouteTable,
    name: str,
    recent: Window,
    guard_span: Window,
    totals: ResourceCounts | None,
    guard_live: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    route = table.routes.get(name)
    counts = recent.resource(name)
    totals = totals or ResourceCounts()
    return {
        "resource": name,
        "listed": route is not None,
        "backend": table.default if route is None else route.backend,
        "methods": {} if route is None else dict(route.methods),
        **resource_rates(recent, name),
        "canary": canary_json(route),
        "shadow": shadow_json(route, counts, totals),
        "fallback": fallback_json(route, counts, totals),
        "guard": guard_json(route, guard_span.resource(name), totals, guard_live),
    }


def resource_rates(recent: Window, name: str) -> dict[str, float | None]:
    """`{"requests_per_second": 2.5, "error_rate": 0.1}` of a resource (None: no request)."""
    counts = recent.resource(name)
    return {
        "requests_per_second": recent.rate(counts.requests),
        "error_rate": ratio(counts.errors, counts.requests),
    }


def canary_json(route: Route | None) -> dict[str, Any] | None:
    if route is None or route.canary is None:
        return None
    return dataclasses.asdict(route.canary)


def shadow_json(
    route: Route | None, counts: ResourceCounts, totals: ResourceCounts
) -> dict[str, Any]:
    """The shadow cell: match rate and comparisons in the window, the worst class since start."""
    shadow = None if route is None else route.shadow
    return {
        "configured": shadow is not None,
        "backend": None if shadow is None else shadow.backend,
        "percent": None if shadow is None else shadow.percent,
        "writes": shadow is not None and shadow.writes,
        "match_rate": shadow_match_rate(counts),
        "comparisons": sum(counts.shadow.values()),
        "worst": worst(kind for kind, count in totals.classes.items() if count),
    }


def fallback_json(
    route: Route | None, counts: ResourceCounts, totals: ResourceCounts
) -> dict[str, Any]:
    fallback = None if route is None else route.fallback
    return {
        "configured": fallback is not None,
        "backend": None if fallback is None else fallback.backend,
        "on": [] if fallback is None else sorted(fallback.on),
        "count": totals.fallbacks,
        "recent": counts.fallbacks,
    }


def guard_json(
    route: Route | None,
    span: ResourceCounts,
    totals: ResourceCounts,
    live: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The guard's configuration and its live state in this process (`Guards.describe`):
    the backend it watches, its window's figures, a dry run's "would roll back" reason, and
    the guard rollback that left the resource where it is (time and reason)."""
    guard = None if route is None else route.guard
    if guard is None:
        settings: dict[str, Any] = {item.name: None for item in dataclasses.fields(Guard)}
    else:
        settings = dataclasses.asdict(guard)
    live = live or {}
    return {
        "configured": guard is not None,
        "state": guard_state(guard, span.guard_rollbacks, live.get("state", "off")),
        "rollbacks": totals.guard_rollbacks,
        **settings,
        "watching": live.get("watching"),
        "figures": live.get("window"),
        "would_roll_back": live.get("would_roll_back"),
        "fired": live.get("fired"),
        "error": live.get("error"),
    }


def guard_state(guard: Guard | None, recent_rollbacks: float, live: str = "off") -> str:
    """off, idle (nothing to roll back to), armed, dry run, rolled back, or failed."""
    if recent_rollbacks > 0 and live != "failed":
        return "rolled back"
    if guard is None:
        return "off"
    if live != "off":
        return live
    return "dry run" if guard.dry_run else "armed"


def backend_json(
    table: RouteTable, name: str, recent: Window, series: list[Window | None], in_flight: float
) -> dict[str, Any]:
    figures = recent.backend(name)
    backend = table.backends.get(name)
    return {
        "backend": name,
        "url": None if backend is None else backend.url,
        "in_flight": in_flight,
        **dataclasses.asdict(figures),
        "series": series_values(series, name),
    }
