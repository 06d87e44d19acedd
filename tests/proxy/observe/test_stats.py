"""proxy.observe.stats: quantiles from bucket deltas, windows, rates and series, without sockets."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from proxy.observe.metrics import DURATION_BUCKETS, Metrics
from proxy.observe.stats import (
    BackendCounts,
    ResourceCounts,
    Snapshot,
    StatsTracker,
    difference,
    quantile,
    shadow_match_rate,
    snapshot,
)

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, (), None),
        (0.5, ((0.1, 0.0), (INF, 0.0)), None),
        # rank 2 of 4 in (0.1, 0.5]: 1 below, 2 inside -> halfway
        (0.5, ((0.1, 1.0), (0.5, 3.0), (INF, 4.0)), 0.3),
        # rank 0.5 in the first bucket: interpolated from 0
        (0.5, ((0.1, 1.0), (0.5, 1.0), (INF, 1.0)), 0.05),
        # rank 3.96 in +Inf: the highest finite bound
        (0.99, ((0.1, 1.0), (0.5, 3.0), (INF, 4.0)), 0.5),
        # rank exactly at a bucket's top: that bucket's bound
        (0.25, ((0.1, 1.0), (0.5, 3.0), (INF, 4.0)), 0.1),
        # empty buckets in between are skipped
        (0.75, ((0.1, 2.0), (0.2, 2.0), (0.4, 4.0), (INF, 4.0)), 0.3),
        (1.0, ((0.001, 10.0), (INF, 10.0)), 0.001),
    ],
)
def test_quantile(q: float, buckets: tuple[tuple[float, float], ...], expected: float) -> None:
    assert quantile(q, buckets) == pytest.approx(expected)


def test_difference_subtracts_totals_and_survives_a_reset() -> None:
    before = Snapshot(
        10.0,
        {"drf": BackendCounts(10.0, 1.0, ((0.1, 8.0), (INF, 10.0)))},
        {"bookings": ResourceCounts(10.0, 1.0, {"match": 4.0}, 2.0, 0.0)},
    )
    after = Snapshot(
        14.0,
        {
            "drf": BackendCounts(30.0, 1.0, ((0.1, 20.0), (INF, 30.0))),
            "legacy": BackendCounts(4.0, 4.0, ((0.1, 4.0), (INF, 4.0))),
        },
        # a restarted worker: counters lower than before count from zero
        {"bookings": ResourceCounts(3.0, 0.0, {"match": 6.0, "mismatch": 1.0}, 1.0, 1.0)},
    )
    window = difference(after, before)
    assert window.seconds == 4.0
    assert window.backends == {
        "drf": BackendCounts(20.0, 0.0, ((0.1, 12.0), (INF, 20.0))),
        "legacy": BackendCounts(4.0, 4.0, ((0.1, 4.0), (INF, 4.0))),
    }
    assert window.resources == {
        "bookings": ResourceCounts(3.0, 0.0, {"match": 2.0, "mismatch": 1.0}, 1.0, 1.0)
    }
    drf = window.backend("drf")
    assert (drf.requests_per_second, drf.error_rate) == (5.0, 0.0)
    assert drf.p50_seconds == pytest.approx(0.1 * 10 / 12)
    assert drf.p99_seconds == 0.1
    assert window.backend("legacy").error_rate == 1.0
    idle = window.backend("nobody")
    assert (idle.requests_per_second, idle.error_rate, idle.p50_seconds) == (0.0, None, None)


def test_snapshot_reads_every_family_of_the_registry() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.request_done("bookings", "drf", "GET", 200, 0.003)
    metrics.request_done("bookings", "drf", "POST", 503, 0.2)
    metrics.request_done("tours", "drf", "GET", 200, 20.0)
    metrics.request_done("tours", "legacy", "GET", 404, 0.0001)
    metrics.shadow_comparisons.labels("bookings", "match").inc(3)
    metrics.shadow_comparisons.labels("bookings", "error").inc()
    metrics.fallbacks.labels("tours", "drf", "legacy", "404").inc(2)
    metrics.guard_rollbacks.labels("tours").inc()
    metrics.in_flight("drf").inc()
    taken = snapshot(registry, 7.0)
    assert taken.time == 7.0
    assert taken.backends["legacy"] == BackendCounts(
        1.0, 0.0, tuple((bound, 1.0) for bound in (*DURATION_BUCKETS, INF))
    )
    drf = dict(taken.backends["drf"].buckets)
    assert (drf[0.0025], drf[0.005], drf[0.25], drf[10], drf[INF]) == (0.0, 1.0, 2.0, 2.0, 3.0)
    assert taken.backends["drf"].requests == 3.0
    assert taken.backends["drf"].errors == 1.0
    assert taken.resources["bookings"] == ResourceCounts(2.0, 1.0, {"match": 3.0, "error": 1.0})
    assert taken.resources["tours"] == ResourceCounts(2.0, 0.0, {}, 2.0, 1.0)
    assert taken.in_flight == {"drf": 1.0}


def test_shadow_match_rate() -> None:
    assert shadow_match_rate(ResourceCounts()) is None
    counts = ResourceCounts(shadow={"match": 6.0, "mismatch": 1.0, "error": 1.0})
    assert shadow_match_rate(counts) == 0.75


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker_on(registry: CollectorRegistry, clock: Clock, **options: float) -> StatsTracker:
    return StatsTracker(lambda now: snapshot(registry, now), clock=clock, **options)


def test_recent_window_only_counts_what_happened_in_it() -> None:
    registry, clock = CollectorRegistry(), Clock()
    metrics = Metrics(registry)
    tracker = tracker_on(registry, clock, window=10.0)
    for _ in range(100):  # slow requests long ago
        metrics.request_done("tours", "drf", "GET", 500, 3.0)
    tracker.sample()
    clock.now += 6.0
    tracker.sample()
    for _ in range(10):
        metrics.request_done("tours", "drf", "GET", 200, 0.004)
    clock.now += 6.0  # t=12: the window starts at the sample of t=0
    recent = tracker.recent()
    assert recent.seconds == 12.0
    drf = recent.backend("drf")
    assert drf.requests_per_second == pytest.approx(10 / 12)
    assert drf.error_rate == 0.0
    # 10 observations in (0.0025, 0.005]
    assert drf.p50_seconds == pytest.approx(0.0025 + 0.0025 * 5 / 10)
    assert drf.p99_seconds == pytest.approx(0.0025 + 0.0025 * 9.9 / 10)
    clock.now += 5.0  # t=17: the window starts at t=6, still before the fast requests
    assert tracker.recent().backend("drf").requests_per_second == pytest.approx(10 / 11)
    clock.now += 10.0  # t=27: nothing new in the window
    idle = tracker.recent().backend("drf")
    assert (idle.requests_per_second, idle.error_rate, idle.p99_seconds) == (0.0, None, None)


def test_series_has_a_fixed_length_of_steps_oldest_first() -> None:
    registry, clock = CollectorRegistry(), Clock()
    metrics = Metrics(registry)
    tracker = tracker_on(registry, clock, history=30.0, step=5.0)
    tracker.sample()
    for n in (5, 10, 0, 20):
        for _ in range(n):
            metrics.request_done("tours", "legacy", "GET", 502 if n == 20 else 200, 0.02)
        clock.now += 5.0
        tracker.sample()
    windows = tracker.series()
    assert len(windows) == 6
    assert windows[:2] == [None, None]  # before the first sample
    rates = [None if w is None else w.backend("legacy").requests_per_second for w in windows]
    assert rates == [None, None, 1.0, 2.0, 0.0, 4.0]
    errors = [None if w is None else w.backend("legacy").error_rate for w in windows]
    assert errors == [None, None, 0.0, 0.0, None, 1.0]


def test_old_samples_are_dropped_and_polls_do_not_pile_up() -> None:
    registry, clock = CollectorRegistry(), Clock()
    tracker = tracker_on(registry, clock, history=20.0, step=5.0)
    for _ in range(100):
        clock.now += 1.0
        tracker.sample()
        tracker.sample()  # a second poll in the same instant takes no new snapshot
    assert len(tracker.samples) == 26  # 20 s of history + one step, and the one before
    assert tracker.samples[-1].time - tracker.samples[0].time == 25.0
