"""The HTTP side of a source system: plain JSON over aiohttp, no auth.

Handlers hand stored JSON text straight out; every error is `{"error": "..."}`.

Dry runs (`proxy.dryrun`): a request carrying either dry-run header must bear a signature that
verifies under the shadow secret, over its method, raw target and body, or it is refused with
403 before anything runs. A verified write runs as usual and is rolled back: it answers what the
write would have answered and stores nothing. A verified read is an ordinary read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, asks, verify
from source_systems.query import parse_list_query
from source_systems.store import Conflict, Store
from source_systems.system import System

log = logging.getLogger("source_systems")

STORE = web.AppKey("store", Store)
SYSTEM = web.AppKey("system", System)
DRY_RUN = web.RequestKey("dry_run", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_text(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return json_text(json.dumps({"error": message}), status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routing errors and anything unexpected become JSON errors, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return error(exc.status, exc.reason.lower())
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(500, "internal error")


def dry_runs(secret: str | None) -> Middleware:
    """The middleware that lets through only genuine dry runs, and marks them (`DRY_RUN`).

    `secret` None (not configured): every request asking for a dry run is refused.
    """

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if asks(request.headers):
            headers = request.headers
            reason = verify(
                secret,
                headers.get(SHADOW_HEADER),
                headers.get(SIGNATURE_HEADER),
                request.method,
                request.raw_path,
                await request.read(),
                time.time(),
            )
            if reason is not None:
                log.warning("refused dry run %s %s: %s", request.method, request.path, reason)
                return error(403, "invalid dry-run signature")
            request[DRY_RUN] = True
        return await handler(request)

    return check


def is_dry_run(request: web.Request) -> bool:
    return request.get(DRY_RUN, False) is True


def collection_of(request: web.Request) -> str | None:
    name = request.match_info["collection"]
    return name if name in request.app[SYSTEM].collections else None


def id_of(request: web.Request) -> int | None:
    text = request.match_info["id"]
    return int(text) if text.isascii() and text.isdigit() else None


async def object_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "system": request.app[SYSTEM].name})


async def list_records(request: web.Request) -> web.Response:
    collection = collection_of(request)
    if collection is None:
        return error(404, "not found")
    try:
        query = parse_list_query(request.query.items())
    except ValueError as exc:
        return error(400, str(exc))
    count, items = request.app[STORE].select(collection, query)
    return json_text(f'{{"count":{count},"items":[{",".join(items)}]}}')


async def get_record(request: web.Request) -> web.Response:
    collection, record_id = collection_of(request), id_of(request)
    if collection is None or record_id is None:
        return error(404, "not found")
    data = request.app[STORE].get(collection, record_id)
    return error(404, "not found") if data is None else json_text(data)


async def create_record(request: web.Request) -> web.Response:
    collection = collection_of(request)
    if collection is None:
        return error(404, "not found")
    body = await object_body(request)
    if body is None:
        return error(400, "body must be a JSON object")
    record_id = body.get("id")
    if record_id is not None and (type(record_id) is not int or record_id < 1):
        return error(400, "id must be a positive integer")
    try:
        data = request.app[STORE].create(collection, body, dry_run=is_dry_run(request))
        return json_text(data, 201)
    except Conflict as exc:
        return error(409, str(exc))


def updater(merge: bool) -> Handler:
    """PUT (replace) or PATCH (shallow merge) of one record."""

    async def update(request: web.Request) -> web.Response:
        collection, record_id = collection_of(request), id_of(request)
        if collection is None or record_id is None:
            return error(404, "not found")
        body = await object_body(request)
        if body is None:
            return error(400, "body must be a JSON object")
        store = request.app[STORE]
        write = store.merge if merge else store.replace
        data = write(collection, record_id, body, dry_run=is_dry_run(request))
        return error(404, "not found") if data is None else json_text(data)

    return update


def create_app(
    system: System, db_path: Path | str, shadow_secret: str | None = None
) -> web.Application:
    """The application of one system; its store opens (and seeds) on startup.

    `shadow_secret` verifies dry runs; None refuses them all."""
    app = web.Application(middlewares=[json_errors, dry_runs(shadow_secret)])
    app[SYSTEM] = system

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = Store.open(db_path, system)
        yield
        app[STORE].close()

    app.cleanup_ctx.append(store_ctx)
    app.router.add_get("/healthz", health)
    app.router.add_get("/{collection}", list_records)
    app.router.add_post("/{collection}", create_record)
    app.router.add_get("/{collection}/{id}", get_record)
    app.router.add_put("/{collection}/{id}", updater(merge=False))
    app.router.add_patch("/{collection}/{id}", updater(merge=True))
    return app
