"""The per-request series of `proxy.observe.metrics`, counted in plain numbers on the hot path
and handed to their prometheus_client children by `Metrics.flush`."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class RequestSeries:
    """One (resource, backend, method, code) series: its children and what is not flushed yet."""

    count: Counter
    duration: Histogram
    requests: int = 0
    seconds: float = 0.0
    # per DURATION_BUCKETS bound (an observation lands in the first bound >= it), then +Inf
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))

    def flush(self) -> None:
        if not self.requests:
            return
        self.count.inc(self.requests)
        add_observations(self.duration, self.buckets, self.seconds)
        self.requests, self.seconds = 0, 0.0
        self.buckets[:] = [0] * len(self.buckets)


def add_observations(histogram: Histogram, buckets: list[int], seconds: float) -> None:
    """Add counted observations to a histogram child at once.

    prometheus_client has no public call for this, so it uses what `Histogram.observe` itself
    does (`_sum.inc`, `_buckets[i].inc`): non-cumulative bucket values, file-backed in
    multiprocess mode. tests/proxy/test_metrics.py checks the exposition this gives.
    """
    histogram._sum.inc(seconds)
    for index, count in enumerate(buckets):
        if count:
            histogram._buckets[index].inc(count)


class InFlight:
    """Requests in flight to one backend, published to the gauge by `Metrics.flush`."""

    __slots__ = ("value", "gauge")

    def __init__(self, gauge: Gauge) -> None:
        self.value = 0
        self.gauge = gauge

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1
