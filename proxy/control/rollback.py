"""The guard's timer: judge the armed guards twice a second and roll a failing resource back.

Every `EVALUATE_EVERY` seconds, aligned to the wall clock so that the workers of one proxy
evaluate at the same instants, `check` re-arms the guards when the table or the audit log changed
(`Guards.sync`), then asks each armed guard's window for a `verdict` (`proxy.migration.guard`).
A reason to roll back rolls the resource back through `proxy.routing.edit` (as
`strangler rollback` does; user "guard", the reason with the figures) and reloads the table at
once. A guard with `dry_run: true` only reports: a warning in the log,
strangler_guard_dry_run_trips_total, and "would roll back" on the dashboard. While the proxy
drains nothing is rolled back.

Workers each see only their own traffic (so `min_requests` counts per worker) and decide alone;
`edit.rollback_if` checks and rolls back under the routes file's lock, so of several workers
tripping at once exactly one rolls back and writes the audit line. With a store (`store`, the
replica's `proxy.control.fleet.Fleet`) the audit log is the store's and the rollback is one
compare-and-swap conditioned on the resource still being on the backend the guard saw: of several
replicas tripping at once, one rolls back and writes the one audit entry.

A canary's watch that trips stops the canary instead (`stop_canary`): its percent set to 0 in
one audited edit (`edit.stop_canary_if`, action "stop_canary"; on a store, one compare-and-swap),
conditioned on the canary and the resource's backend being those the guard saw, so again one
worker or replica writes it; counted in strangler_guard_rollbacks_total. The canary's guard is
armed again when the table gives the canary a share anew, with fresh windows.

The timer works with what it needs, not the process state: a `GuardTimer` holds the guards, the
routes file, the metrics, and three callables (the table in force, the reload, whether the
process drains).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from proxy.migration.guard import GUARD_USER, Fired, Guards, Watch
from proxy.observe.metrics import Metrics
from proxy.routing import edit
from proxy.routing.model import RoutesError, RouteTable
from proxy.routing.store import StoreError

log = logging.getLogger("strangler.guard")

EVALUATE_EVERY = 0.5


def _never() -> bool:
    return False


class History(Protocol):
    """Where the audit log is read and a rollback written, when not beside routes.yaml."""

    async def audit(self) -> list[dict[str, Any]]: ...

    async def rollback_if(
        self, resource: str, expected: str, *, user: str, reason: str
    ) -> edit.Change | None: ...

    async def stop_canary_if(
        self, resource: str, expected: str, main: str, *, user: str, reason: str
    ) -> edit.Change | None: ...


@dataclass(frozen=True)
class GuardTimer:
    """What the guard's timer reads and acts on."""

    guards: Guards  # the armed guards' windows; the timer records what it did there
    routes: Path  # routes.yaml (its audit log is next to it)
    metrics: Metrics
    table: Callable[[], RouteTable]  # the table in force now
    reload: Callable[[], Awaitable[object]]  # load the rewritten routes.yaml at once
    draining: Callable[[], bool] = _never  # True once the process stops: no more rollbacks
    store: History | None = None  # the fleet's store instead of the routes file


def audit_stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_size, info.st_mtime_ns


async def run_guards(timer: GuardTimer, *, every: float = EVALUATE_EVERY) -> None:
    """Evaluate the guards every `every` seconds (on wall-clock multiples); until cancelled."""
    while True:
        try:
            await check(timer)
        except Exception:
            log.exception("guard evaluation failed")
        await asyncio.sleep(every - time.time() % every)


async def check(timer: GuardTimer) -> None:
    """One evaluation: re-arm from the table and audit log if either changed, then judge."""
    guards = timer.guards
    audit = edit.audit_path(timer.routes)
    stamp = audit_stamp(audit) if timer.store is None else None  # a store: on table changes
    table = timer.table()
    if table is not guards.table or stamp != guards.audit_stamp:
        if timer.store is None:
            entries = await asyncio.to_thread(lambda: list(edit.read_audit(audit)))
        else:
            try:
                entries = await timer.store.audit()
            except StoreError:  # the fleet logs it; armed again once the store answers
                return
        guards.sync(table, entries)
        guards.audit_stamp = stamp
    if timer.draining():
        return
    for watch in [*guards.watches.values(), *guards.canaries.values()]:
        reason = watch.verdict()
        if watch.guard.dry_run:
            report_dry_run(timer.metrics, watch, reason)
        elif reason is not None and watch.main is not None:
            await stop_canary(timer, watch, watch.main, reason)
        elif reason is not None:
            await fire(timer, watch, reason)


def report_dry_run(metrics: Metrics, watch: Watch, reason: str | None) -> None:
    """Log and count once each time a dry-run guard's limits start being exceeded."""
    if reason is not None and watch.would is None:
        stays = f"{watch.resource} stays on {watch.backend}"
        if watch.main is not None:
            stays = f"the canary of {watch.resource} on {watch.backend} goes on"
        log.warning("%s (dry run: %s)", reason, stays)
        metrics.guard_dry_run(watch.resource)
        watch.would_at = time.time()
    watch.would = reason
    if reason is None:
        watch.would_at = None


async def fire(timer: GuardTimer, watch: Watch, reason: str) -> None:
    """Roll `watch.resource` back unless another process already did; then reload."""
    guards = timer.guards
    guards.watches.pop(watch.resource, None)
    log.warning("%s: rolling %s back from %s", reason, watch.resource, watch.backend)
    try:
        if timer.store is None:
            change = await asyncio.to_thread(
                edit.rollback_if,
                timer.routes,
                watch.resource,
                watch.backend,
                user=GUARD_USER,
                reason=reason,
            )
        else:
            change = await timer.store.rollback_if(
                watch.resource, watch.backend, user=GUARD_USER, reason=reason
            )
    except (edit.EditError, RoutesError, StoreError) as exc:
        guards.errors[watch.resource] = str(exc)
        log.error("guard: cannot roll %s back: %s", watch.resource, exc)
        return
    if change is None:
        log.warning("guard: %s was already moved off %s", watch.resource, watch.backend)
    else:
        guards.fired[watch.resource] = Fired(change.time, reason)
        timer.metrics.guard_rollback(watch.resource)
        log.warning(
            "guard: rolled %s back from %s to %s",
            watch.resource,
            change.from_backend,
            change.to_backend,
        )
    await timer.reload()


async def stop_canary(timer: GuardTimer, watch: Watch, main: str, reason: str) -> None:
    """Set the canary of `watch.resource` to 0 unless another process already did; reload."""
    timer.guards.canaries.pop(watch.resource, None)
    log.warning("%s: stopping the canary of %s on %s", reason, watch.resource, watch.backend)
    try:
        if timer.store is None:
            change = await asyncio.to_thread(
                edit.stop_canary_if,
                timer.routes,
                watch.resource,
                watch.backend,
                main,
                user=GUARD_USER,
                reason=reason,
            )
        else:
            change = await timer.store.stop_canary_if(
                watch.resource, watch.backend, main, user=GUARD_USER, reason=reason
            )
    except (edit.EditError, RoutesError, StoreError) as exc:
        timer.guards.errors[watch.resource] = str(exc)
        log.error("guard: cannot stop the canary of %s: %s", watch.resource, exc)
        return
    if change is None:
        log.warning(
            "guard: the canary of %s on %s was already changed", watch.resource, watch.backend
        )
    else:
        timer.metrics.guard_rollback(watch.resource)
        log.warning("guard: stopped the canary of %s on %s", watch.resource, watch.backend)
    await timer.reload()
