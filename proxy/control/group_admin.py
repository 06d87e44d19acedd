"""POST /-/flip and POST /-/rollback: a flip or a rollback of a resource or of a group.

    POST /-/flip      {"group": "reservations", "backend": "drf", "reason": "…"}
    POST /-/flip      {"resource": "bookings", "backend": "drf", "reason": "…"}
    POST /-/rollback  {"group": "reservations", "reason": "…"}   (or {"resource": …})

The same token as every change (`proxy.control.changes`; its name is the audit's `user`). A
group's change is one write of routes.yaml (or one compare-and-swap of the store) and one audit
entry naming the group and its members (`proxy.routing.group_edit`); the answer is that entry,
with `changed` and the new table's `sha256`, as for PUT /-/routes/{resource}.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from proxy.control.changes import (
    STATE,
    apply_change,
    error_json,
    json_body,
    requester,
    unauthorized,
)
from proxy.control.fleet import Fleet
from proxy.routing import edit, group_edit, store_edit

TARGET = '{"group": "<name>"} or {"resource": "<name>"}'
FLIP = '{"group": "<name>", "backend": "<name>"} or {"resource": "<name>", "backend": "<name>"}'


def add_group_changes(app: web.Application) -> None:
    app.router.add_post("/-/flip", flip)
    app.router.add_post("/-/rollback", rollback)


def target(body: dict[str, Any] | None) -> tuple[str, str] | None:
    """`("group", name)` or `("resource", name)`: exactly one of the two, a string."""
    if body is None:
        return None
    given = [(kind, body[kind]) for kind in ("group", "resource") if kind in body]
    if len(given) != 1 or not isinstance(given[0][1], str):
        return None
    return given[0]


async def flip(request: web.Request) -> web.Response:
    user = requester(request)
    if user is None:
        return unauthorized()
    body = await json_body(request)
    found = target(body)
    if body is None or found is None or not isinstance(body.get("backend"), str):
        return error_json(400, f"Bad request: send {FLIP}.")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        return error_json(400, "Bad request: reason must be a string.")
    kind, name = found
    backend: str = body["backend"]
    routes = request.app[STATE].settings.routes
    change: Callable[[], edit.Change]
    if kind == "group":
        change = partial(group_edit.flip_group, routes, name, backend, user=user, reason=reason)
    else:
        change = partial(edit.flip, routes, name, backend, user=user, reason=reason)

    async def through(fleet: Fleet) -> edit.Change:
        by = store_edit.author(fleet.store, user, reason)
        if kind == "group":
            return await store_edit.flip_group(fleet.store, name, backend, by)
        return await store_edit.flip(fleet.store, name, backend, by)

    return await apply_change(request, change, through)


async def rollback(request: web.Request) -> web.Response:
    user = requester(request)
    if user is None:
        return unauthorized()
    body = await json_body(request)
    found = target(body)
    if body is None or found is None:
        return error_json(400, f"Bad request: send {TARGET}.")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        return error_json(400, "Bad request: reason must be a string.")
    kind, name = found
    routes = request.app[STATE].settings.routes
    change: Callable[[], edit.Change]
    if kind == "group":
        change = partial(group_edit.rollback_group, routes, name, user=user, reason=reason)
    else:
        change = partial(edit.rollback, routes, name, user=user, reason=reason)

    async def through(fleet: Fleet) -> edit.Change:
        by = store_edit.author(fleet.store, user, reason)
        if kind == "group":
            return await store_edit.rollback_group(fleet.store, name, by)
        return await store_edit.rollback(fleet.store, name, by)

    return await apply_change(request, change, through)
