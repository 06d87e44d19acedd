"""The per-request series of `proxy.observe.metrics`, counted in plain numbers on the hot path
(`RequestCounts`) and handed to their prometheus_client children by `Metrics.flush`.

Compiled with the hot path (proxy/speedups.py): the classes are plain, not dataclasses, so
that their `__init__` is compiled too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from proxy.routing.model import METHODS, OTHER_RESOURCE

# Of any length, not fixed: compiled, a fixed-length tuple is kept unboxed and would be boxed
# again into a new tuple on every loop over it (about 3,500 instructions per request).
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SeriesKey = tuple[str, str, str, int]  # resource, backend, method label, code


def method_label(method: str) -> str:
    """`"GET"` -> `"GET"`; anything non-standard (`"PROPFIND"`, `"get"`) -> `"other"`. (GET
    first: compiled, comparing with one string costs a fifth of the set lookup.)"""
    if method == "GET":
        return method
    return method if method in METHODS else OTHER_RESOURCE


def bucket(seconds: float) -> int:
    """The index of the first bound of DURATION_BUCKETS >= `seconds` (bisect_left), or the +Inf
    bucket's. A loop, not `bisect`: compiled, it compares native floats where bisect would box
    all fourteen bounds on every call; most requests stop at the first or second bound."""
    index = 0
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return index
        index += 1
    return index


class RequestSeries:
    """One (resource, backend, method, code) series: its children and what is not flushed yet."""

    __slots__ = ("count", "duration", "requests", "seconds", "buckets")

    def __init__(self, count: Counter, duration: Histogram) -> None:
        self.count = count
        self.duration = duration
        self.requests = 0
        self.seconds = 0.0
        # per DURATION_BUCKETS bound (an observation lands in the first bound >= it), then +Inf
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)

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


class RequestCounts:
    """The hot path's counts: a `RequestSeries` per (resource, backend, method, code) and an
    `InFlight` per backend, each made by `new_series` / `new_level` the first time it is needed.
    """

    __slots__ = ("series", "levels", "_new_series", "_new_level", "_index")

    def __init__(
        self,
        new_series: Callable[[SeriesKey], RequestSeries],
        new_level: Callable[[str], InFlight],
    ) -> None:
        self.series: dict[SeriesKey, RequestSeries] = {}
        self.levels: dict[str, InFlight] = {}
        self._new_series = new_series
        self._new_level = new_level
        # The same series by resource, then backend, method label and code: looked up without
        # a key tuple made, hashed and freed per request (`series` is for the flush).
        self._index: dict[str, dict[str, dict[str, dict[int, RequestSeries]]]] = {}

    def request_done(
        self, resource: str, backend: str, method: str, code: int, seconds: float
    ) -> None:
        """Count one answered request. `resource` must be a table resource or "other"."""
        label = method_label(method)
        by_backend = self._index.get(resource)
        by_method = None if by_backend is None else by_backend.get(backend)
        by_code = None if by_method is None else by_method.get(label)
        series = None if by_code is None else by_code.get(code)
        if series is None:
            series = self._new(resource, backend, label, code)
        series.requests += 1
        series.seconds += seconds
        index = bucket(seconds)
        count: int = series.buckets[index]  # typed: compiled, a native add, not PyNumber's
        series.buckets[index] = count + 1

    def _new(self, resource: str, backend: str, label: str, code: int) -> RequestSeries:
        key = (resource, backend, label, code)
        series = self.series[key] = self._new_series(key)
        by_backend = self._index.setdefault(resource, {})
        by_backend.setdefault(backend, {}).setdefault(label, {})[code] = series
        return series

    def in_flight(self, backend: str) -> InFlight:
        """The in-flight count to inc()/dec() around a forwarded request."""
        level = self.levels.get(backend)
        if level is None:
            level = self.levels[backend] = self._new_level(backend)
        return level
