"""The admin listener's application: metrics, health, the table in force, flips.

Served by `proxy.server` on its own (loopback by default) port; never on the public one.
GET /-/ is the live dashboard (`proxy.control.dashboard`; its JSON is GET /-/stats and
GET /-/audit); a client asking for JSON only (`Accept: application/json`) gets the list of
endpoints instead. GET /-/diffs is the shadow report (`proxy.control.diffs`), GET /-/debt the
fallback debt (`proxy.observe.debt`), both merged over workers (`proxy.observe.sharing`).
Changes (PUT /-/routes/{resource}, POST /-/routes/{resource}/rollback, and POST /-/flip and
POST /-/rollback for a resource or a group, `proxy.control.group_admin`) need
`Authorization: Bearer <token>`: a named admin token, recorded as its name in the audit log, or
STRANGLER_ADMIN_TOKEN, recorded as `admin` (`proxy.control.changes`); with no token configured
they are all refused. They write routes.yaml through `proxy.routing.edit` (so the file stays
the truth) and reload at once; with a store (`--store`) they write through it instead
(`proxy.control.fleet_admin`), and GET /-/fleet lists the fleet's live replicas.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from aiohttp import web

from proxy.clock import iso_time
from proxy.control.changes import (
    STATE,
    apply_change,
    error_json,
    json_body,
    requester,
    unauthorized,
)
from proxy.control.dashboard import DASHBOARD, add_dashboard, page, resource_rates
from proxy.control.diffs import diffs_report
from proxy.control.fleet import Fleet
from proxy.control.fleet_admin import FLEET, add_fleet, shared_snapshots
from proxy.control.group_admin import add_group_changes
from proxy.control.groups_view import groups_json
from proxy.control.lifecycle import add_lifecycle, routes_lifecycle
from proxy.migration.shadow import KEEP
from proxy.observe.debt import merge_debt
from proxy.observe.metrics import exposition
from proxy.observe.sharing import DEBT, MISMATCHES, NOISE, others
from proxy.routing import edit, rollout_edit, store_edit
from proxy.routing.clients import pin_json
from proxy.routing.model import OTHER_RESOURCE, Route, RouteTable
from proxy.state import ProxyState

log = logging.getLogger(__name__)

RATE_WINDOW = 10.0
SAMPLE_INTERVAL = 1.0
LIFECYCLE_SAMPLES_EVERY = 5  # dashboard samples per lifecycle sample
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_admin_app(
    state: ProxyState,
    *,
    rate_window: float = RATE_WINDOW,
    sample_interval: float = SAMPLE_INTERVAL,
    fleet: Fleet | None = None,
) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app[STATE] = state
    add_fleet(app, fleet)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthz", healthz)
    app.router.add_get("/-/readyz", readyz)
    app.router.add_get("/-/routes", routes)
    app.router.add_put("/-/routes/{resource}", flip)
    app.router.add_post("/-/routes/{resource}/rollback", rollback)
    app.router.add_post("/-/routes/{resource}/rollout/{action}", rollout)
    add_group_changes(app)  # POST /-/flip, POST /-/rollback: a resource or a group
    app.router.add_get("/-/diffs", diffs)
    app.router.add_get("/-/debt", debt)
    app.router.add_get("/-/", index)
    add_dashboard(app, state, window=rate_window, sample_every=sample_interval)
    # The lifecycle's figures span 5 minutes: a reading of the registry every few seconds is
    # enough, and each one costs a full collection (the dashboard's own sampler reads it too).
    add_lifecycle(app, state, sample_every=sample_interval * LIFECYCLE_SAMPLES_EVERY)
    return app


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_json(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("admin request failed: %s %s", request.method, request.path)
        return error_json(500, "Internal error of the admin API.")


# -- read-only endpoints -----------------------------------------------------------------------


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body, content_type = exposition(state.registry, state.settings.shared_directory)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining:
        return error_json(503, "Service unavailable: the proxy is shutting down.")
    return web.json_response({"status": "ready", "sha256": state.table.sha256})


async def routes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = table_json(state.table, state.loaded_at, state.last_reload_error)
    fleet = request.app.get(FLEET)
    body["store"] = None if fleet is None else fleet.describe()
    tracker = request.app[DASHBOARD].tracker
    recent = tracker.recent()
    names = [*state.table.routes, OTHER_RESOURCE]
    body["traffic"] = {name: resource_rates(recent, name) for name in names}
    body["traffic_window_seconds"] = tracker.window
    body["groups"] = groups_json(state.table)
    body.update(routes_lifecycle(request.app))  # "stages" and "progress"
    return web.json_response(body)


async def diffs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    raw = request.query.get("limit", str(KEEP))
    if not raw.isdigit() or not 1 <= int(raw) <= KEEP:
        raise web.HTTPBadRequest(reason=f"Bad request: limit must be an integer from 1 to {KEEP}.")
    resource = request.query.get("resource")
    directory = state.settings.shared_directory
    fleet = request.app.get(FLEET)
    if fleet is None:
        shared = others(directory, MISMATCHES)
        noise = others(directory, NOISE)
    else:
        shared = await shared_snapshots(fleet, MISMATCHES)
        noise = await shared_snapshots(fleet, NOISE)
    body = diffs_report(
        state.shadows, state.table, state.registry, resource, int(raw), shared, directory, noise
    )
    if body is None:
        raise web.HTTPNotFound(reason=f"Not found: no resource {resource!r}.")
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def debt(request: web.Request) -> web.Response:
    """Request shapes that needed a fallback, most counted first (`?resource=` narrows); with
    several workers, merged over all of them."""
    resource = request.query.get("resource")
    state = request.app[STATE]
    directory = state.settings.shared_directory
    fleet = request.app.get(FLEET)
    if fleet is None and directory is None:
        body = [entry.to_json() for entry in state.debt.entries(resource)]
    else:
        shared = others(directory, DEBT) if fleet is None else await shared_snapshots(fleet, DEBT)
        entries = state.debt.snapshot()
        entries += [entry for snapshot in shared for entry in snapshot]
        body = merge_debt(entries, resource)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


async def index(request: web.Request) -> web.Response:
    if not wants_json(request):
        return await page(request)
    return web.json_response(
        {
            "endpoints": {
                "GET /metrics": "Prometheus exposition",
                "GET /-/healthz": "liveness",
                "GET /-/readyz": "readiness (table loaded, not draining)",
                "GET /-/routes": "the table in force, its hash, reload status, live traffic",
                "PUT /-/routes/{resource}": 'flip: {"backend": ..., "reason": ...} (token)',
                "POST /-/routes/{resource}/rollback": 'rollback: {"reason": ...} (token)',
                "POST /-/flip": 'flip: {"group" or "resource": ..., "backend": ...} (token)',
                "POST /-/rollback": 'rollback: {"group" or "resource": ...} (token)',
                "GET /-/": "the live dashboard (text/html)",
                "GET /-/stats": "the dashboard's data: table, per-resource and per-backend figures",
                "GET /-/audit?limit=N": "the last N flips and rollbacks, newest first",
                "GET /-/debt?resource=R": "request shapes that needed a fallback, with counts",
                "GET /-/diffs?resource=R&limit=N": "shadow figures; R's last N mismatches",
                "GET /-/ready/{resource}": "readiness verdict and its evidence (last 5 min)",
                "GET /-/fleet": "the live replicas sharing the store (--store), lagging ones",
            }
        }
    )


def table_json(table: RouteTable, loaded_at: float, last_error: str | None) -> dict[str, Any]:
    return {
        "version": table.version,
        "source": table.source,
        "sha256": table.sha256,
        "loaded_at": iso_time(loaded_at, "seconds"),
        "last_reload_error": last_error,
        "default": table.default,
        "backends": {name: {"url": backend.url} for name, backend in table.backends.items()},
        "resources": {name: route_json(route) for name, route in table.routes.items()},
    }


def route_json(route: Route) -> dict[str, Any]:
    features = {
        name: None if feature is None else _plain(dataclasses.asdict(feature))
        for name, feature in (
            ("canary", route.canary),
            ("shadow", route.shadow),
            ("fallback", route.fallback),
            ("guard", route.guard),
        )
    }
    clients = {"clients": [pin_json(pin) for pin in route.clients]}  # secrets only as digests
    return {"backend": route.backend, "methods": dict(route.methods), **features, **clients}


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: sorted(value) if isinstance(value, frozenset | tuple) else value
        for key, value in values.items()
    }


# -- changes -----------------------------------------------------------------------------------


async def flip(request: web.Request) -> web.Response:
    user = requester(request)
    if user is None:
        return unauthorized()
    body = await json_body(request)
    if body is None or not isinstance(body.get("backend"), str):
        return error_json(400, 'Bad request: send {"backend": "<name>", "reason": "<text>"}.')
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        return error_json(400, "Bad request: reason must be a string.")
    resource = request.match_info["resource"]

    def change() -> edit.Change:
        return edit.flip(
            request.app[STATE].settings.routes,
            resource,
            body["backend"],
            user=user,
            reason=reason,
        )

    async def through(fleet: Fleet) -> edit.Change:
        by = store_edit.author(fleet.store, user, reason)
        return await store_edit.flip(fleet.store, resource, body["backend"], by)

    return await apply_change(request, change, through)


async def rollback(request: web.Request) -> web.Response:
    user = requester(request)
    if user is None:
        return unauthorized()
    body = await json_body(request)
    reason = None if body is None else body.get("reason", "")
    if not isinstance(reason, str):
        return error_json(400, 'Bad request: send {"reason": "<text>"} or no body.')
    resource = request.match_info["resource"]

    def change() -> edit.Change:
        path = request.app[STATE].settings.routes
        return edit.rollback(path, resource, user=user, reason=reason)

    async def through(fleet: Fleet) -> edit.Change:
        by = store_edit.author(fleet.store, user, reason)
        return await store_edit.rollback(fleet.store, resource, by)

    return await apply_change(request, change, through)


async def rollout(request: web.Request) -> web.Response:
    """POST /-/routes/{resource}/rollout/{start|pause|resume|abort} (proxy.routing.rollout_edit)"""
    user = requester(request)
    if user is None:
        return unauthorized()
    body = await json_body(request)
    reason = None if body is None else body.get("reason", "")
    resource, action = request.match_info["resource"], request.match_info["action"]
    if not isinstance(reason, str) or action not in rollout_edit.ACTIONS:
        return error_json(400, "Bad request: POST .../rollout/start|pause|resume|abort.")
    path = request.app[STATE].settings.routes
    change = partial(rollout_edit.command, path, resource, action, user=user, reason=reason)

    async def through(fleet: Fleet) -> edit.Change:
        by = store_edit.author(fleet.store, user, reason)
        plan = partial(rollout_edit.plan_command, resource=resource, action=action, author=by)
        done = await store_edit.apply(fleet.store, plan, by)
        assert done is not None  # a command always plans a change
        return done

    return await apply_change(request, change, through)
