"""Live traffic figures for the dashboard, computed from sampled counter and histogram totals.

`snapshot(registry, now)` reads the totals so far (`proxy.observe.metrics.samples`: summed over
workers in multiprocess mode) into an immutable `Snapshot`. `StatsTracker` keeps the snapshots of
the last `history` seconds; the difference of two snapshots is a `Window`, from which rates, 5xx
ratios and latency quantiles follow. Quantiles are estimated from the bucket deltas the way
Prometheus' `histogram_quantile` does: linear interpolation inside the bucket holding the rank.

>>> quantile(0.5, ((0.1, 2.0), (0.2, 4.0), (math.inf, 4.0)))
0.1
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from proxy.observe.metrics import SHADOW_RESULTS, samples

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending bounds


@dataclass(frozen=True)
class BackendCounts:
    requests: float = 0.0
    errors: float = 0.0
    buckets: Buckets = ()


@dataclass(frozen=True)
class ResourceCounts:
    requests: float = 0.0
    errors: float = 0.0
    shadow: Mapping[str, float] = field(default_factory=dict)  # result -> comparisons
    fallbacks: float = 0.0
    guard_rollbacks: float = 0.0
    classes: Mapping[str, float] = field(default_factory=dict)  # shadow mismatch class -> count


@dataclass(frozen=True)
class Snapshot:
    """Totals since the process started, at monotonic `time`."""

    time: float
    backends: Mapping[str, BackendCounts] = field(default_factory=dict)
    resources: Mapping[str, ResourceCounts] = field(default_factory=dict)
    in_flight: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendFigures:
    requests_per_second: float
    error_rate: float | None  # None: no request in the window
    p50_seconds: float | None
    p99_seconds: float | None


@dataclass(frozen=True)
class Window:
    """What happened between two snapshots."""

    start: float
    end: float
    backends: Mapping[str, BackendCounts]
    resources: Mapping[str, ResourceCounts]

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def rate(self, count: float) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0

    def backend(self, name: str) -> BackendFigures:
        counts = self.backends.get(name, BackendCounts())
        return BackendFigures(
            self.rate(counts.requests),
            ratio(counts.errors, counts.requests),
            quantile(0.5, counts.buckets),
            quantile(0.99, counts.buckets),
        )

    def resource(self, name: str) -> ResourceCounts:
        return self.resources.get(name, ResourceCounts())


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of the observations counted in cumulative `buckets`; None when empty.

    As Prometheus' histogram_quantile: linear interpolation within the bucket holding rank
    `q * total` (the first bucket from 0); a rank in the +Inf bucket gives the highest finite
    bound. `((0.1, 1), (0.5, 3), (inf, 4))` holds 1 observation <= 0.1, 2 in (0.1, 0.5], 1 above.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        if not math.isinf(bound):
            lower = bound
        below = count
    return lower


def increase(after: float, before: float) -> float:
    """A counter's increase; a lower value means it was reset (a restarted worker)."""
    return after - before if after >= before else after


def bucket_increase(after: Buckets, before: Buckets) -> Buckets:
    old = dict(before)
    return tuple((bound, increase(count, old.get(bound, 0.0))) for bound, count in after)


def difference(after: Snapshot, before: Snapshot) -> Window:
    backends = {
        name: _backend_increase(counts, before.backends.get(name, BackendCounts()))
        for name, counts in after.backends.items()
    }
    resources = {
        name: _resource_increase(counts, before.resources.get(name, ResourceCounts()))
        for name, counts in after.resources.items()
    }
    return Window(before.time, after.time, backends, resources)


def _backend_increase(after: BackendCounts, before: BackendCounts) -> BackendCounts:
    return BackendCounts(
        increase(after.requests, before.requests),
        increase(after.errors, before.errors),
        bucket_increase(after.buckets, before.buckets),
    )


def _resource_increase(after: ResourceCounts, before: ResourceCounts) -> ResourceCounts:
    return ResourceCounts(
        increase(after.requests, before.requests),
        increase(after.errors, before.errors),
        {
            result: increase(value, before.shadow.get(result, 0.0))
            for result, value in after.shadow.items()
        },
        increase(after.fallbacks, before.fallbacks),
        increase(after.guard_rollbacks, before.guard_rollbacks),
        {
            kind: increase(value, before.classes.get(kind, 0.0))
            for kind, value in after.classes.items()
        },
    )


# -- reading the registry --------------------------------------------------------------------


def snapshot(registry: CollectorRegistry, now: float, directory: Path | None = None) -> Snapshot:
    """The proxy's totals so far, per backend and per resource (over all workers when
    `directory` holds their value files)."""
    backends: dict[str, dict[str, float]] = {}
    buckets: dict[str, dict[float, float]] = {}
    resources: dict[str, dict[str, float]] = {}
    in_flight: dict[str, float] = {}
    for sample in samples(registry, directory):
        labels, value = sample.labels, sample.value
        if sample.name == "strangler_requests_total":
            error = value if labels["code"].startswith("5") else 0.0
            for totals in (
                backends.setdefault(labels["backend"], {}),
                resources.setdefault(labels["resource"], {}),
            ):
                totals["requests"] = totals.get("requests", 0.0) + value
                totals["errors"] = totals.get("errors", 0.0) + error
        elif sample.name == "strangler_request_duration_seconds_bucket":
            per_bound = buckets.setdefault(labels["backend"], {})
            bound = float(labels["le"])
            per_bound[bound] = per_bound.get(bound, 0.0) + value
        elif sample.name == "strangler_in_flight_requests":
            in_flight[labels["backend"]] = in_flight.get(labels["backend"], 0.0) + value
        elif sample.name == "strangler_shadow_comparisons_total":
            _add(resources, labels["resource"], f"shadow:{labels['result']}", value)
        elif sample.name == "strangler_shadow_mismatches_total":
            _add(resources, labels["resource"], f"class:{labels['class']}", value)
        elif sample.name == "strangler_fallbacks_total":
            _add(resources, labels["resource"], "fallbacks", value)
        elif sample.name == "strangler_guard_rollbacks_total":
            _add(resources, labels["resource"], "guard_rollbacks", value)
    return Snapshot(
        now,
        {
            name: BackendCounts(
                totals.get("requests", 0.0),
                totals.get("errors", 0.0),
                tuple(sorted(buckets.get(name, {}).items())),
            )
            for name, totals in backends.items()
        },
        {name: _resource_counts(totals) for name, totals in resources.items()},
        in_flight,
    )


def _add(table: dict[str, dict[str, float]], key: str, name: str, value: float) -> None:
    totals = table.setdefault(key, {})
    totals[name] = totals.get(name, 0.0) + value


def _resource_counts(totals: Mapping[str, float]) -> ResourceCounts:
    return ResourceCounts(
        totals.get("requests", 0.0),
        totals.get("errors", 0.0),
        _prefixed(totals, "shadow:"),
        totals.get("fallbacks", 0.0),
        totals.get("guard_rollbacks", 0.0),
        _prefixed(totals, "class:"),
    )


def _prefixed(totals: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {
        name.removeprefix(prefix): value
        for name, value in totals.items()
        if name.startswith(prefix)
    }


# -- the tracker -----------------------------------------------------------------------------


class StatsTracker:
    """Snapshots of the last `history` seconds; the recent window and a series of steps."""

    def __init__(
        self,
        read: Callable[[float], Snapshot],
        *,
        window: float = 10.0,
        history: float = 120.0,
        step: float = 5.0,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.window = window
        self.history = history
        self.step = step
        self.min_interval = min_interval
        self.clock = clock
        self.samples: deque[Snapshot] = deque()

    @classmethod
    def of(
        cls,
        registry: CollectorRegistry,
        directory: Path | None = None,
        *,
        window: float = 10.0,
        step: float = 5.0,
    ) -> StatsTracker:
        """A tracker reading `registry` (all workers' totals when `directory` holds their
        value files)."""
        return cls(lambda now: snapshot(registry, now, directory), window=window, step=step)

    def sample(self) -> Snapshot:
        """Take a snapshot (unless the last one is fresher than `min_interval`); drop old ones."""
        now = self.clock()
        if not self.samples or now - self.samples[-1].time >= self.min_interval:
            self.samples.append(self.read(now))
        while len(self.samples) > 1 and self.samples[1].time <= now - self.history - self.step:
            self.samples.popleft()
        return self.samples[-1]

    def recent(self) -> Window:
        """From the last snapshot at or before `window` seconds ago (or the oldest) to now."""
        self.sample()
        return self.span(self.window)

    def span(self, seconds: float) -> Window:
        """From the last snapshot at or before `seconds` ago (or the oldest) to the latest."""
        latest = self.samples[-1] if self.samples else self.sample()
        return difference(latest, self._at_or_before(latest.time - seconds))

    def series(self) -> list[Window | None]:
        """`history / step` consecutive windows of `step` seconds, oldest first; None for the
        steps before the first snapshot (so a chart's time axis does not depend on uptime).
        The oldest step with data may be shorter: it starts at the first snapshot."""
        latest = self.sample()
        points = math.ceil(self.history / self.step)
        windows: list[Window | None] = []
        for k in range(points):
            end = latest.time - k * self.step
            after = self._at_or_before(end)
            before = self._at_or_before(end - self.step)
            windows.append(None if after is before else difference(after, before))
        return windows[::-1]

    def _at_or_before(self, moment: float) -> Snapshot:
        times = [sample.time for sample in self.samples]
        index = bisect.bisect_right(times, moment) - 1
        return self.samples[max(index, 0)]


def shadow_match_rate(counts: ResourceCounts) -> float | None:
    """Matching answers over all comparisons (mismatches and errors count against)."""
    total = sum(counts.shadow.get(result, 0.0) for result in SHADOW_RESULTS)
    return ratio(counts.shadow.get("match", 0.0), total)


def series_values(windows: Sequence[Window | None], name: str) -> dict[str, list[float | None]]:
    """Per step: request rate, 5xx ratio, p50 and p99 (seconds) of backend `name`; None for
    steps without data (and for ratios and quantiles of steps without requests)."""
    figures = [None if window is None else window.backend(name) for window in windows]
    return {
        "requests_per_second": [None if f is None else f.requests_per_second for f in figures],
        "error_rate": [None if f is None else f.error_rate for f in figures],
        "p50_seconds": [None if f is None else f.p50_seconds for f in figures],
        "p99_seconds": [None if f is None else f.p99_seconds for f in figures],
    }
