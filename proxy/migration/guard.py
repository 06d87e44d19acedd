"""The guard's verdict: whether a resource's backend misbehaves, from a rolling window.

A route's `guard: {max_error_rate, max_p99_ms, min_requests, window, dry_run}` watches the
requests of that resource served by the route's backend: answers >= 500 (the backend's own, and
the proxy's 502/503/504 when it cannot reach it) and latencies, over a rolling `window` of
seconds. With at least `min_requests` in the window, an error rate above `max_error_rate` or a
p99 above `max_p99_ms` is a reason to roll the resource back (`verdict`)::

    guard: error rate 7.2% > 5% over 60 s, 312 requests
    guard: p99 850 ms > 500 ms over 60 s, 312 requests

When a guard is armed is read from the table and the audit log (`Guards.sync`), so every worker
(and a restarted proxy) agrees: only when a rollback would move the resource somewhere else, and
not when the resource's latest audit entry is a guard rollback that left it where it is (a guard
that fired stays quiet until the resource is flipped anew).

A guarded resource with a canary (percent above 0, to another backend) is also watched on its
canary side, from the moment the table gives the canary a share: the requests the canary share
sent to the canary backend, against the live baseline of the requests routed to the resource's
own backend over the same window. With at least `min_requests` on the canary side, the canary
is stopped (`canary_verdict`) when its error rate exceeds both `max_error_rate` and the
baseline's rate, or its p99 exceeds both `max_p99_ms` and the baseline's p99::

    guard: canary drf error rate 50.0% > 5% and legacy's 0.0% over 60 s, 40 requests

So a canary is only blamed for what the old stack does not suffer as well (a shared database
down fails both sides: nothing to stop).

This module owns the pure part and the per-request observation: `Window`, `quantile`, `verdict`
and `Guards` (the armed guards' windows, fed by `Guards.observe` at the end of every request).
Acting on a verdict (rewriting routes.yaml, the audit line, dry-run reports) is the timer's job:
`proxy.control.rollback`.

Costs: the hot path (`Guards.observe`) is a dict lookup, and for a guarded resource three
increments in the current time slot of its window (a bisect finds the latency bucket).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.routing import edit
from proxy.routing.audit import touches
from proxy.routing.model import Guard, RouteTable

GUARD_USER = "guard"
SLOTS = 30
QUANTILE = 0.99
# Latency bucket bounds in ms: 0.25 ms to about 4.7 hours, four per doubling (each ~19% wide).
EDGES_MS: tuple[float, ...] = tuple(0.25 * 2 ** (i / 4) for i in range(100))
Clock = Callable[[], float]


@dataclass(frozen=True)
class Figures:
    """What a window counted: requests, errors (>= 500) and the p99 latency (None: no request)."""

    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(slots=True)
class _Slot:
    index: int
    latency: list[int]
    requests: int = 0
    errors: int = 0


class Window:
    """Requests, errors and a latency histogram over the last `seconds`, in `SLOTS` time slots.

    A new slot (one small list) is made when the first request of a slot arrives; a request
    otherwise only increments. The window covers the current slot and the `SLOTS - 1` before it.
    """

    def __init__(
        self, seconds: float, edges: Sequence[float] = EDGES_MS, clock: Clock = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.width = seconds / SLOTS
        self.edges = tuple(edges)
        self.clock = clock
        self.slots: deque[_Slot] = deque()

    def observe(self, error: bool, ms: float) -> None:
        index = int(self.clock() / self.width)
        slots = self.slots
        if slots and slots[-1].index == index:
            slot = slots[-1]
        else:
            slot = _Slot(index, [0] * (len(self.edges) + 1))
            slots.append(slot)
            while slots[0].index <= index - SLOTS:
                slots.popleft()
        slot.requests += 1
        if error:
            slot.errors += 1
        slot.latency[bisect_left(self.edges, ms)] += 1

    def figures(self) -> Figures:
        oldest = int(self.clock() / self.width) - SLOTS + 1
        live = [slot for slot in self.slots if slot.index >= oldest]
        latency = [sum(counts) for counts in zip(*(slot.latency for slot in live), strict=True)]
        return Figures(
            sum(slot.requests for slot in live),
            sum(slot.errors for slot in live),
            quantile(latency, self.edges, QUANTILE),
        )


def quantile(counts: Sequence[int], edges: Sequence[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of a histogram, interpolated inside its bucket.

    `counts[i]` holds the values in `(edges[i-1], edges[i]]`; the last count, those above
    every edge (reported as the last edge). Exact at the edges: with a threshold among the
    edges, the result exceeds it exactly when the true nearest-rank quantile does.

    >>> quantile([0, 10, 0], [1.0, 2.0], 0.99)
    2.0
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = edges[index - 1] if index > 0 else 0.0
            if index == len(edges):
                return lower
            return lower + (edges[index] - lower) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: the rank is within the total")


def edges_for(guard: Guard) -> tuple[float, ...]:
    """`EDGES_MS` with the guard's p99 limit as one more edge, so the check is exact there."""
    if guard.max_p99_ms is None:
        return EDGES_MS
    return tuple(sorted({*EDGES_MS, guard.max_p99_ms}))


def canary_verdict(
    guard: Guard, canary: Figures, baseline: Figures, backend: str, main: str
) -> str | None:
    """The reason to stop a canary on `backend`, or None: over the guard's limits and worse than
    the baseline (`main`'s requests over the same window; none counts as no errors).

    >>> g = Guard(max_error_rate=0.05, max_p99_ms=None, min_requests=20, window=60, dry_run=False)
    >>> canary_verdict(g, Figures(40, 20, 9.0), Figures(50, 0, 8.0), "drf", "legacy")
    "guard: canary drf error rate 50.0% > 5% and legacy's 0.0% over 60 s, 40 requests"
    >>> canary_verdict(g, Figures(40, 20, 9.0), Figures(50, 30, 8.0), "drf", "legacy") is None
    True
    """
    if canary.requests < guard.min_requests:
        return None
    over = f"over {guard.window:g} s, {canary.requests} requests"
    rate, base, limit = canary.error_rate or 0.0, baseline.error_rate or 0.0, guard.max_error_rate
    if limit is not None and rate > limit and rate > base:
        return (
            f"guard: canary {backend} error rate {rate * 100:.1f}% > {limit * 100:g}% "
            f"and {main}'s {base * 100:.1f}% {over}"
        )
    p99, base_p99, most = canary.p99_ms, baseline.p99_ms, guard.max_p99_ms
    if most is not None and p99 is not None and p99 > most and p99 > (base_p99 or 0.0):
        base_text = "none" if base_p99 is None else f"{base_p99:.0f} ms"
        return (
            f"guard: canary {backend} p99 {p99:.0f} ms > {most:g} ms and {main}'s {base_text} "
            + over
        )
    return None


def verdict(guard: Guard, figures: Figures) -> str | None:
    """The reason to roll back, or None while the figures are within the guard's limits.

    >>> g = Guard(max_error_rate=0.05, max_p99_ms=None, min_requests=50, window=60, dry_run=False)
    >>> verdict(g, Figures(requests=312, errors=23, p99_ms=12.0))
    'guard: error rate 7.4% > 5% over 60 s, 312 requests'
    """
    if figures.requests < guard.min_requests:
        return None
    over = f"over {guard.window:g} s, {figures.requests} requests"
    rate = figures.error_rate
    limit = guard.max_error_rate
    if limit is not None and rate is not None and rate > limit:
        return f"guard: error rate {rate * 100:.1f}% > {limit * 100:g}% {over}"
    p99, most = figures.p99_ms, guard.max_p99_ms
    if most is not None and p99 is not None and p99 > most:
        return f"guard: p99 {p99:.0f} ms > {most:g} ms {over}"
    return None


@dataclass
class Watch:
    """An armed guard: the resource, the backend it watches, its window, its dry-run report.

    A canary's watch (`main` set) watches the canary backend against `baseline`, the window of
    `main`, the resource's own backend."""

    resource: str
    backend: str
    guard: Guard
    window: Window
    would: str | None = None  # dry run: the reason, while the limits are exceeded
    would_at: float | None = None  # time.time() it started
    main: str | None = None  # a canary's watch: the route's backend, the live baseline
    baseline: Window | None = None  # a canary's watch: `main`'s window

    def verdict(self) -> str | None:
        """The reason to act (roll back, or stop the canary), or None."""
        if self.main is None or self.baseline is None:
            return verdict(self.guard, self.window.figures())
        return canary_verdict(
            self.guard, self.window.figures(), self.baseline.figures(), self.backend, self.main
        )


@dataclass(frozen=True)
class Fired:
    """The guard rollback that left the resource where it is (from the audit log)."""

    time: str
    reason: str


@dataclass
class Guards:
    """One per process: the windows of the armed guards (hot path) and what the timer
    (`proxy.control.rollback`) found: rollbacks that fired, rollbacks that failed."""

    clock: Clock = time.monotonic
    watches: dict[str, Watch] = field(default_factory=dict)
    canaries: dict[str, Watch] = field(default_factory=dict)  # resource -> its canary's watch
    fired: dict[str, Fired] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # resource -> why a rollback failed
    table: RouteTable | None = None
    audit_stamp: tuple[int, int] | None = None

    def observe(
        self, resource: str, backend: str, status: int, seconds: float, canary: bool = False
    ) -> None:
        """Count one finished request (called for every request: returns at once if unguarded).

        `canary`: the canary share sent it (not a tester's override, not the routed side)."""
        watch = self.watches.get(resource)
        if watch is not None and watch.backend == backend:
            watch.window.observe(status >= 500, seconds * 1000.0)
        side = self.canaries.get(resource)
        if side is None or side.baseline is None:
            return
        if canary and backend == side.backend:
            side.window.observe(status >= 500, seconds * 1000.0)
        elif not canary and backend == side.main:
            side.baseline.observe(status >= 500, seconds * 1000.0)

    def sync(self, table: RouteTable, entries: Iterable[Mapping[str, Any]]) -> None:
        """Arm the guards of `table` that have something to roll back; keep running windows."""
        history = list(entries)
        watches: dict[str, Watch] = {}
        fired: dict[str, Fired] = {}
        canaries: dict[str, Watch] = {}
        for name, route in table.routes.items():
            if route.guard is None:
                continue
            canary = route.canary
            if canary is not None and canary.percent > 0 and canary.backend != route.backend:
                canaries[name] = self._canary(name, canary.backend, route.backend, route.guard)
            last = _last_entry(history, name)
            if last is not None and _is_guard_rollback(last) and last.get("to") == route.backend:
                fired[name] = Fired(str(last.get("time")), str(last.get("reason")))
                continue
            target = edit.rollback_target(history, name) or table.default
            if target == route.backend:
                continue
            watches[name] = self._watch(name, route.backend, route.guard)
        self.watches, self.fired, self.table = watches, fired, table
        self.canaries = canaries
        self.errors = {}

    def _watch(self, resource: str, backend: str, guard: Guard) -> Watch:
        old = self.watches.get(resource)
        if old is not None and old.backend == backend and old.guard == guard:
            return old
        return Watch(resource, backend, guard, Window(guard.window, edges_for(guard), self.clock))

    def _canary(self, resource: str, backend: str, main: str, guard: Guard) -> Watch:
        old = self.canaries.get(resource)
        if old is not None and (old.backend, old.main, old.guard) == (backend, main, guard):
            return old
        edges = edges_for(guard)
        baseline = Window(guard.window, edges, self.clock)
        window = Window(guard.window, edges, self.clock)
        return Watch(resource, backend, guard, window, main=main, baseline=baseline)

    def describe(self, resource: str) -> dict[str, Any]:
        """The live state of a resource's guard, for the dashboard.

        `state`: "off" (no guard, or nothing to roll back to), "armed", "dry run" (limits
        exceeded: `would_roll_back` says why), "rolled back" (`fired`: when and why), "failed"
        (the rollback could not be written: `error`; re-armed when the table changes).
        `canary`: None, or the canary's watch (its backend and window, the baseline's).
        """
        watch = self.watches.get(resource)
        side = self.canaries.get(resource)
        armed = watch or side
        fired = self.fired.get(resource)
        figures = None if watch is None else watch.window.figures()
        state = "off"
        if resource in self.errors:
            state = "failed"
        elif fired is not None:
            state = "rolled back"
        elif armed is not None:
            state = "dry run" if armed.guard.dry_run else "armed"
        return {
            "state": state,
            "watching": None if watch is None else watch.backend,
            "window": None if figures is None else _figures_json(figures),
            "would_roll_back": None if watch is None else watch.would,
            "fired": None if fired is None else {"time": fired.time, "reason": fired.reason},
            "error": self.errors.get(resource),
            "canary": None if side is None else _canary_json(side),
        }


def _canary_json(side: Watch) -> dict[str, Any]:
    baseline = None if side.baseline is None else _figures_json(side.baseline.figures())
    return {
        "watching": side.backend,
        "window": _figures_json(side.window.figures()),
        "baseline": side.main,
        "baseline_window": baseline,
        "would_stop": side.would,
    }


def _figures_json(figures: Figures) -> dict[str, Any]:
    p99 = figures.p99_ms
    return {
        "requests": figures.requests,
        "errors": figures.errors,
        "error_rate": figures.error_rate,
        "p99_ms": None if p99 is None else round(p99, 1),
    }


def _last_entry(entries: Sequence[Mapping[str, Any]], resource: str) -> Mapping[str, Any] | None:
    found = [entry for entry in entries if touches(entry, resource)]  # a group's too
    return found[-1] if found else None


def _is_guard_rollback(entry: Mapping[str, Any]) -> bool:
    return entry.get("action") == "rollback" and entry.get("user") == GUARD_USER
