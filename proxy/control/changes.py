"""The admin API's changes: who asks, what they send, and the edit applied and reloaded.

A change needs `Authorization: Bearer <token>`, one of `Settings.named_tokens()`: a named token
(STRANGLER_ADMIN_TOKENS `alice:tok1,bob:tok2`, or the lines of STRANGLER_ADMIN_TOKENS_FILE) is
recorded in the audit log as its name; the unnamed STRANGLER_ADMIN_TOKEN as `admin`. The token
sent is compared with every configured one in constant time (`hmac.compare_digest`), all of
them whichever matches; with none configured every change is refused. No token is ever logged.

`apply_change` runs an edit of routes.yaml off the event loop and reloads at once; with a store
(`--store`), it runs the edit through the store (one compare-and-swap) and applies the new
table on this replica at once.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from proxy.control.fleet import Fleet
from proxy.control.fleet_admin import FLEET
from proxy.routing import edit
from proxy.routing.model import RoutesError
from proxy.routing.reload import reload_now
from proxy.routing.store import StoreError
from proxy.state import ProxyState

STATE = web.AppKey("state", ProxyState)


def error_json(status: int, message: str, errors: list[str] | None = None) -> web.Response:
    """The API's error envelope."""
    body = {"http_status_code": status, "message": message, "errors": errors or []}
    return web.json_response(body, status=status)


def requester(request: web.Request) -> str | None:
    """The name of the admin token in `Authorization: Bearer <token>`, or None (no token sent,
    a wrong one, or none configured)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    sent = given.strip().encode()
    found = None
    for name, token in request.app[STATE].settings.named_tokens():
        if hmac.compare_digest(sent, token.encode()) and found is None:
            found = name
    return found if scheme.lower() == "bearer" and sent else None


def unauthorized() -> web.Response:
    response = error_json(401, "Unauthorized: send Authorization: Bearer <admin token>.")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def json_body(request: web.Request) -> dict[str, Any] | None:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def apply_change(
    request: web.Request,
    change: Callable[[], edit.Change],
    through: Callable[[Fleet], Awaitable[edit.Change]],
) -> web.Response:
    """Run the edit off the event loop (it may wait on the file lock), then reload at once; with
    a store, `through` it instead (one compare-and-swap), applied here at once."""
    state = request.app[STATE]
    fleet = request.app.get(FLEET)
    where = "routes.yaml" if fleet is None else "the stored table"
    revision: dict[str, int] = {}
    try:
        if fleet is None:
            done: edit.Change | None = await asyncio.to_thread(change)
        else:
            done = await fleet.written(await through(fleet))
            assert done is not None
            revision["revision"] = done.revision or fleet.revision  # 0: nothing written
    except RoutesError as exc:
        return error_json(409, f"Conflict: {where} is invalid; fix it first.", list(exc.errors))
    except edit.EditConflict as exc:
        return error_json(409, f"Conflict: {exc}")
    except edit.EditError as exc:
        return error_json(400, f"Bad request: {exc}")
    except StoreError as exc:
        return error_json(503, f"Service unavailable: the store: {exc}")
    if fleet is None:
        await reload_now(state)
    assert done is not None  # a flip or a rollback always plans a change
    body = {**done.to_json(), "changed": done.recorded, "sha256": state.table.sha256}
    if done.paused:  # a flip that took the resource over from its running rollout plan
        body["rollout_paused"] = True
    return web.json_response({**body, **revision})
