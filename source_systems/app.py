"""The HTTP side of a source system: plain JSON over aiohttp, no auth.

Handlers hand stored JSON text straight out; every error is `{"error": "..."}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from source_systems.query import parse_list_query
from source_systems.store import Conflict, Store
from source_systems.system import System

log = logging.getLogger("source_systems")

STORE = web.AppKey("store", Store)
SYSTEM = web.AppKey("system", System)

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
        return json_text(request.app[STORE].create(collection, body), 201)
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
        data = write(collection, record_id, body)
        return error(404, "not found") if data is None else json_text(data)

    return update


def create_app(system: System, db_path: Path | str) -> web.Application:
    """The application of one system; its store opens (and seeds) on startup."""
    app = web.Application(middlewares=[json_errors])
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
