"""The rollout autopilot: judge each running plan every `every` seconds, step it or abort it.

Each evaluation reads the table in force; for every plan with `state: running` it takes the
resource's figures since the step began (`proxy.migration.rollout`: a reading of the metrics
when this process first saw that step and since, the difference with one now; summed over the
workers with `--workers`), and asks `judge`. An advance or an abort is one audited edit of the
table (`proxy.routing.rollout_edit`, user "autopilot", the reason with the evidence), conditioned
on the plan still being at the step and since it judged: under the routes file's lock, or in the
store's compare-and-swap, so with several workers (or replicas) one takes each step and the
others find the table moved on. The table is then reloaded at once. The plan's progress lives in
the table, so a restarted proxy resumes at its step (with figures counted from its start).

In a fleet (`fleet`), every replica shares its own counts of the step under its lease, and each
judges on the sum over the live replicas (one share per replica: the workers of one replica
count the same summed traffic, so only one of theirs is added): whichever replica writes the
step, it is judged on the whole fleet's traffic.

An abort counts strangler_rollout_aborts_total{resource} (StranglerRolloutAborted fires on it);
strangler_rollout_state{resource,state} shows every plan's state. While the process drains,
nothing is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry

from proxy.clock import from_iso
from proxy.migration.rollout import (
    ABORT,
    ADVANCE,
    Counts,
    delta,
    figures,
    judge,
    merged,
    read_counts,
)
from proxy.observe.metrics import Metrics
from proxy.routing import edit, rollout_edit, store_edit
from proxy.routing.model import ROLLOUT_STATES, RoutesError, RouteTable
from proxy.routing.store import RouteStore, StoreError

log = logging.getLogger("strangler.autopilot")

AUTOPILOT_USER = "autopilot"


def _never() -> bool:
    return False


class FleetFigures(Protocol):
    """How a replica shares its step counts with the others (`proxy.control.fleet.Fleet`)."""

    async def publish(self, name: str, value: bytes) -> None: ...
    async def shared_by_replica(self, name: str) -> dict[str, bytes]: ...


@dataclass(frozen=True)
class Autopilot:
    """What the autopilot reads and acts on (as `proxy.control.rollback.GuardTimer`)."""

    routes: Path  # routes.yaml (its audit log beside it)
    metrics: Metrics
    registry: CollectorRegistry
    table: Callable[[], RouteTable]  # the table in force now
    reload: Callable[[], Awaitable[object]]  # load the rewritten table at once
    draining: Callable[[], bool] = _never
    directory: Path | None = None  # the workers' shared metric files (their summed figures)
    store: RouteStore | None = None  # the fleet's store instead of the routes file
    fleet: FleetFigures | None = None  # the other replicas' counts (with a store)
    group: str = ""  # this replica's id without a worker's pid: its workers share one count
    # (resource, step, since) -> the reading when this process first saw that step
    baselines: dict[tuple[str, int, str | None], tuple[float, Counts]] = field(default_factory=dict)


async def run_autopilot(pilot: Autopilot, *, every: float) -> None:
    """Evaluate the running plans every `every` seconds (on wall-clock multiples)."""
    while True:
        try:
            await evaluate(pilot)
        except Exception:
            log.exception("rollout evaluation failed")
        await asyncio.sleep(every - time.time() % every)


async def evaluate(pilot: Autopilot) -> None:
    """One evaluation of every plan of the table in force."""
    table = pilot.table()
    running = []
    for name, route in table.routes.items():
        if route.rollout is None:
            continue
        pilot.metrics.rollout_state(name, route.rollout.state, ROLLOUT_STATES)
        if route.rollout.state == "running":
            running.append(name)
    current = {(name, *_progress(table, name)) for name in running}
    for key in set(pilot.baselines) - current:
        del pilot.baselines[key]
    for name in running:
        if pilot.draining():
            return
        await _evaluate_one(pilot, table, name)


def _progress(table: RouteTable, name: str) -> tuple[int, str | None]:
    plan = table.routes[name].rollout
    assert plan is not None
    return plan.step, plan.since


async def _evaluate_one(pilot: Autopilot, table: RouteTable, name: str) -> None:
    route = table.routes[name]
    plan = route.rollout
    assert plan is not None
    counts = await asyncio.to_thread(read_counts, pilot.registry, name, pilot.directory)
    now = time.time()
    key = (name, plan.step, plan.since)
    if key not in pilot.baselines:
        pilot.baselines[key] = (now, counts)
    first_seen, before = pilot.baselines[key]
    began = (from_iso(plan.since) if plan.since else None) or first_seen
    seen = await _fleet_counts(pilot, name, plan.step, plan.since, delta(counts, before))
    verdict = judge(plan, figures(seen, route.backend, plan.to), now - began)
    if verdict.action not in (ADVANCE, ABORT):
        return
    expect = rollout_edit.Expected(plan.step, plan.since)
    make = rollout_edit.plan_advance if verdict.action == ADVANCE else rollout_edit.plan_abort
    try:
        change = await _write(pilot, partial(make, resource=name, expect=expect), verdict.reason)
    except (edit.EditError, RoutesError, StoreError) as exc:
        log.error("autopilot: cannot edit the rollout of %s: %s", name, exc)
        return
    if change is None:
        log.info("autopilot: the rollout of %s already moved on", name)
    else:
        log.warning("autopilot: %s %s: %s", change.action, name, change.reason)
        state = {"rollout-abort": "aborted", "rollout-done": "done"}.get(change.action, "running")
        pilot.metrics.rollout_state(name, state, ROLLOUT_STATES)
        if verdict.action == ABORT:
            pilot.metrics.rollout_abort(name)
    await pilot.reload()


async def _fleet_counts(
    pilot: Autopilot, name: str, step: int, since: str | None, own: Counts
) -> Counts:
    """`own` step counts plus every other replica's of the same step; `own` alone without a
    fleet, or when the store does not answer (the write that follows would fail anyway)."""
    if pilot.fleet is None:
        return own
    key = f"rollout.{name}.{step}.{since or ''}"
    value = json.dumps({"group": pilot.group, "counts": own.to_json()}).encode()
    try:
        await pilot.fleet.publish(key, value)
        others = await pilot.fleet.shared_by_replica(key)
    except (StoreError, TimeoutError) as exc:
        log.warning("autopilot: judging %s on this replica's counts alone: %s", name, exc)
        return own
    groups: dict[str, Counts] = {}
    for replica, shared in sorted(others.items()):
        try:
            data = json.loads(shared)
            group, counts = str(data["group"]), Counts.from_json(data["counts"])
        except (ValueError, KeyError, TypeError):
            log.warning("autopilot: skipping replica %s's unreadable counts of %s", replica, name)
            continue
        if group != pilot.group:
            groups[group] = counts
    return merged([own, *groups.values()])


async def _write(
    pilot: Autopilot, plan: Callable[..., edit.Planned | None], reason: str
) -> edit.Change | None:
    if pilot.store is None:
        author = edit.Author(AUTOPILOT_USER, reason, str(pilot.routes))
        return await asyncio.to_thread(
            edit.apply_file, pilot.routes, partial(plan, author=author), author
        )
    by = store_edit.author(pilot.store, AUTOPILOT_USER, reason)
    return await store_edit.apply(pilot.store, partial(plan, author=by), by)
