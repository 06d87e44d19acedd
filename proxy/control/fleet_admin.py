"""The admin side of a replica with a store: GET /-/fleet, and writes and reads through the store.

With `--store`, the admin app holds the replica's `Fleet` under `FLEET`, and:

- PUT /-/routes/{resource}, POST /-/routes/{resource}/rollback (and so the dashboard's buttons)
  write through the store (`proxy.routing.store_edit`): one compare-and-swap transaction that
  writes the new text and its audit entry together, planned by the same functions as an edit of
  routes.yaml. The new table is applied on this replica at once (`Fleet.written`); the others
  get it from their watch.
- GET /-/audit reads the store's audit log (`recent_audit`).
- GET /-/debt and GET /-/diffs merge every live replica's shared snapshot (`Fleet.shared`).
- GET /-/fleet lists the live replicas::

    {"revision": 42, "store_revision": 57,
     "replicas": [{"id": "web-1", "revision": 42, "sha256": "…", "applied_at": "…",
                   "source": "store", "pid": 123, "lagging": false}, …],
     "lagging": []}

  `revision` is the routes key's (the table the store holds now); a replica whose applied revision
  differs lags (it has not applied the latest table yet, or rejected it as invalid).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from aiohttp import web

from proxy.control.fleet import Fleet
from proxy.routing.store import Replica, StoreError, TableText

log = logging.getLogger(__name__)

FLEET = web.AppKey("fleet", Fleet)


def add_fleet(app: web.Application, fleet: Fleet | None) -> None:
    """GET /-/fleet on the admin `app`; `fleet` is None without a store."""
    if fleet is not None:
        app[FLEET] = fleet
    app.router.add_get("/-/fleet", fleet_list)


def unavailable(exc: StoreError) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(reason=f"Service unavailable: the store: {exc}")


async def fleet_list(request: web.Request) -> web.Response:
    fleet = request.app.get(FLEET)
    if fleet is None:
        raise web.HTTPNotFound(reason="Not found: this proxy runs without a store (--store).")
    try:
        replicas, latest = await asyncio.gather(fleet.store.replicas(), fleet.store.read())
    except StoreError as exc:
        raise unavailable(exc) from exc
    return web.json_response(fleet_json(replicas, latest), headers={"Cache-Control": "no-store"})


def fleet_json(replicas: list[Replica], latest: TableText) -> dict[str, Any]:
    rows = [
        {**dataclasses.asdict(replica), "lagging": replica.revision != latest.revision}
        for replica in sorted(replicas, key=lambda replica: replica.id)
    ]
    return {
        "revision": latest.revision,
        "store_revision": latest.store_revision,
        "replicas": rows,
        "lagging": [row["id"] for row in rows if row["lagging"]],
    }


async def recent_audit(fleet: Fleet, limit: int) -> list[dict[str, Any]]:
    """The store's last `limit` audit entries, newest first."""
    try:
        entries = await fleet.store.audit()
    except StoreError as exc:
        raise unavailable(exc) from exc
    return list(reversed(entries[-limit:]))


async def shared_snapshots(fleet: Fleet, name: str) -> list[Any]:
    """The other live replicas' snapshots of `name`; none when the store cannot be read."""
    try:
        return await fleet.shared(name)
    except StoreError as exc:
        log.warning("the other replicas' %s snapshots are unavailable: %s", name, exc)
        return []
