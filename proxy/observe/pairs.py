"""Per (resource, backend) figures over the last minutes: the evidence of a migration.

`proxy.observe.stats` keeps figures per backend and per resource; readiness compares two
backends on one resource's requests, and the progress line needs each backend's share over five
minutes. `PairHistory` keeps snapshots of the totals per (resource, backend) pair (requests,
5xx answers, duration buckets) and of the shadow comparisons per resource, for `history`
seconds; `span(seconds)` is what happened since then, counter resets handled as in `stats`.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from proxy.observe.metrics import samples
from proxy.observe.stats import BackendCounts, bucket_increase, increase

HISTORY = 300.0  # seconds: the readiness window and the progress line's "last 5m"
Pair = tuple[str, str]  # (resource, backend)


@dataclass(frozen=True)
class PairSnapshot:
    """Totals since the process started, at monotonic `time`."""

    time: float
    pairs: Mapping[Pair, BackendCounts] = field(default_factory=dict)
    shadow: Mapping[Pair, float] = field(default_factory=dict)  # (resource, result) -> count


@dataclass(frozen=True)
class PairWindow:
    seconds: float
    pairs: Mapping[Pair, BackendCounts]
    shadow: Mapping[Pair, float]

    def counts(self, resource: str, backend: str | None) -> BackendCounts:
        if backend is None:
            return BackendCounts()
        return self.pairs.get((resource, backend), BackendCounts())

    def by_backend(self) -> dict[str, float]:
        """Requests per backend, over every resource."""
        totals: dict[str, float] = {}
        for (_, backend), counts in self.pairs.items():
            totals[backend] = totals.get(backend, 0.0) + counts.requests
        return totals


def pair_snapshot(
    registry: CollectorRegistry, now: float, directory: Path | None = None
) -> PairSnapshot:
    """The totals so far (over all workers when `directory` holds their value files)."""
    requests: dict[Pair, list[float]] = {}
    buckets: dict[Pair, dict[float, float]] = {}
    shadow: dict[Pair, float] = {}
    for sample in samples(registry, directory):
        labels, value = sample.labels, sample.value
        if sample.name == "strangler_requests_total":
            totals = requests.setdefault((labels["resource"], labels["backend"]), [0.0, 0.0])
            totals[0] += value
            totals[1] += value if labels["code"].startswith("5") else 0.0
        elif sample.name == "strangler_request_duration_seconds_bucket":
            per_bound = buckets.setdefault((labels["resource"], labels["backend"]), {})
            bound = float(labels["le"])
            per_bound[bound] = per_bound.get(bound, 0.0) + value
        elif sample.name == "strangler_shadow_comparisons_total":
            key = (labels["resource"], labels["result"])
            shadow[key] = shadow.get(key, 0.0) + value
    pairs = {
        pair: BackendCounts(total, errors, tuple(sorted(buckets.get(pair, {}).items())))
        for pair, (total, errors) in requests.items()
    }
    return PairSnapshot(now, pairs, shadow)


def pair_difference(after: PairSnapshot, before: PairSnapshot) -> PairWindow:
    pairs = {}
    for pair, counts in after.pairs.items():
        old = before.pairs.get(pair, BackendCounts())
        pairs[pair] = BackendCounts(
            increase(counts.requests, old.requests),
            increase(counts.errors, old.errors),
            bucket_increase(counts.buckets, old.buckets),
        )
    shadow = {
        key: increase(value, before.shadow.get(key, 0.0)) for key, value in after.shadow.items()
    }
    return PairWindow(after.time - before.time, pairs, shadow)


class PairHistory:
    """Snapshots of the last `history` seconds, taken at most every `min_interval`."""

    def __init__(
        self,
        read: Callable[[float], PairSnapshot],
        *,
        history: float = HISTORY,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.history = history
        self.min_interval = min_interval
        self.clock = clock
        self.samples: deque[PairSnapshot] = deque()

    @classmethod
    def of(cls, registry: CollectorRegistry, directory: Path | None = None) -> PairHistory:
        return cls(lambda now: pair_snapshot(registry, now, directory))

    def sample(self) -> PairSnapshot:
        now = self.clock()
        if not self.samples or now - self.samples[-1].time >= self.min_interval:
            self.samples.append(self.read(now))
        while len(self.samples) > 1 and self.samples[1].time <= now - self.history:
            self.samples.popleft()
        return self.samples[-1]

    def span(self, seconds: float | None = None) -> PairWindow:
        """From the last snapshot at or before `seconds` ago (default `history`; else the
        oldest kept) to a fresh reading (not kept: the sampler keeps the history)."""
        if not self.samples:
            self.sample()
        latest = self.read(self.clock())
        moment = latest.time - (self.history if seconds is None else seconds)
        times = [snapshot.time for snapshot in self.samples]
        index = max(bisect.bisect_right(times, moment) - 1, 0)
        return pair_difference(latest, self.samples[index])
