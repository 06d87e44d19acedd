"""Every metric of the proxy, registered on an injected CollectorRegistry.

Label values are bounded: `resource` comes from the table (or "other"), `method` is one of the
standard methods (or "other"), `code` is an HTTP status.

The per-request series (requests, durations, in-flight) are counted in plain numbers on the hot
path (`proxy.observe.series`) and added to their prometheus_client children by `Metrics.flush`:
prometheus_client takes a lock and checks its arguments on every call, which cost about 4% of
the proxy's CPU per request.
Any collection of the process's own registry flushes first (a collector registered ahead of the
metrics does it), so in one process every read is exact.

With PROMETHEUS_MULTIPROC_DIR set (several workers; `Settings.multiproc_dir`), prometheus_client
keeps values in files and every read sums them over workers with a MultiProcessCollector. There
each worker flushes every `FLUSH_SECONDS` (`flush_periodically`) and when it stops, so a worker's
latest requests reach /metrics within that time. Reading the values back (/metrics, the
dashboard, the shadow report) goes through `samples` (the exposition: `collecting_registry`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

from proxy.observe.series import DURATION_BUCKETS as DURATION_BUCKETS
from proxy.observe.series import InFlight, RequestCounts, RequestSeries, SeriesKey
from proxy.observe.series import method_label as method_label
from proxy.routing.model import OTHER_RESOURCE, RouteTable

UPSTREAM_ERROR_KINDS = frozenset({"connect", "timeout", "reset", "protocol", "tls"})
FLUSH_SECONDS = 0.25
SHADOW_RESULTS = ("match", "mismatch", "error")  # {result} a match rate is over; noise is apart
SHADOW_NOISE = "noise"


class _Flusher:
    """A collector that collects nothing: it flushes pending counts before the others report."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        self._metrics.flush()
        return ()


class Metrics:
    """The proxy's metrics on `registry`; one instance per process. `multiprocess`: values are
    kept in PROMETHEUS_MULTIPROC_DIR files (several workers)."""

    def __init__(
        self, registry: CollectorRegistry, *, multiprocess: bool = False, store: bool = True
    ) -> None:
        # prometheus_client cannot remove a labelled child in multiprocess mode (it warns).
        self._can_remove = not multiprocess
        # the hot path counts here (proxy.observe.series), flushed to the children below
        self.counts = RequestCounts(self._new_series, self._new_level)
        registry.register(_Flusher(self))  # first, so that it runs before the metrics report
        self.requests = Counter(
            "strangler_requests_total",
            "Requests answered by the proxy.",
            ("resource", "backend", "method", "code"),
            registry=registry,
        )
        self.duration = Histogram(
            "strangler_request_duration_seconds",
            "Time from request received to response fully sent.",
            ("resource", "backend"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "strangler_upstream_errors_total",
            "Failures talking to a backend.",
            ("backend", "kind"),
            registry=registry,
        )
        self.in_flight_requests = Gauge(
            "strangler_in_flight_requests",
            "Requests being forwarded to a backend right now.",
            ("backend",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.open_tunnels = Gauge(
            "strangler_open_tunnels",
            "Upgraded connections (WebSocket) spliced to a backend right now.",
            ("backend",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.route_info = Gauge(
            "strangler_route_info",
            "1 for each (resource, backend) pair of the table in force.",
            ("resource", "backend"),
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.config_reloads = Counter(
            "strangler_config_reloads_total",
            "Reloads of routes.yaml by result.",
            ("result",),
            registry=registry,
        )
        self.config_last_reload_success = Gauge(
            "strangler_config_last_reload_success",
            "1 if the last reload of routes.yaml succeeded, else 0.",
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.shadow_comparisons = Counter(
            "strangler_shadow_comparisons_total",
            "Shadowed responses compared with the primary one.",
            ("resource", "result"),
            registry=registry,
        )
        self.shadow_mismatches = Counter(
            "strangler_shadow_mismatches_total",
            "Shadow comparisons that differed, by the class of their worst difference.",
            ("resource", "class"),
            registry=registry,
        )
        self.shadow_dropped = Counter(
            "strangler_shadow_dropped_total",
            "Shadow copies not sent: the shadow queue was full, or a write's body was not kept.",
            ("resource",),
            registry=registry,
        )
        self.fallbacks = Counter(
            "strangler_fallbacks_total",
            "Requests answered by a fallback backend.",
            ("resource", "from_backend", "to_backend", "code"),
            registry=registry,
        )
        self.pinned_requests = Counter(
            "strangler_pinned_total",
            "Requests a pinned client (a resource's clients:) sent to its backend.",
            ("resource", "backend"),
            registry=registry,
        )
        self.guard_rollbacks = Counter(
            "strangler_guard_rollbacks_total",
            "Automatic rollbacks by a guard.",
            ("resource",),
            registry=registry,
        )
        self.guard_dry_run_trips = Counter(
            "strangler_guard_dry_run_trips_total",
            "Times a dry-run guard's limits started being exceeded (it would have rolled back).",
            ("resource",),
            registry=registry,
        )
        self.resource_stage = Gauge(
            "strangler_resource_stage",
            "1 for each resource's migration stage (proxy.migration.stage), 0 for the others.",
            ("resource", "stage"),
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self._staged: frozenset[str] = frozenset()
        self.rollout_aborts = Counter(
            "strangler_rollout_aborts_total",
            "Rollout plans aborted by the autopilot on a failing gate.",
            ("resource",),
            registry=registry,
        )
        self.rollout_state_gauge = Gauge(
            "strangler_rollout_state",
            "1 for each rollout plan's state (pending, running, paused, aborted, done), else 0.",
            ("resource", "state"),
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        # Only a replica of a store has these (`store`): a proxy on routes.yaml has no store to
        # be up or down, and a 0 would fire StranglerStoreUnreachable on it.
        self.table_revision_gauge: Gauge | None = None
        self.store_up_gauge: Gauge | None = None
        if store:
            self.table_revision_gauge = Gauge(
                "strangler_table_revision",
                "Store revision of the table in force (--store; 0: from the cache).",
                multiprocess_mode="livemin",
                registry=registry,
            )
            self.store_up_gauge = Gauge(
                "strangler_store_up",
                "1 while the store (--store) answers this replica's watch and lease, else 0.",
                multiprocess_mode="livemin",
                registry=registry,
            )
        self._route_pairs: frozenset[tuple[str, str]] = frozenset()

    def request_done(
        self, resource: str, backend: str, method: str, code: int, seconds: float
    ) -> None:
        """Count one answered request. `resource` must be a table resource or "other"."""
        self.counts.request_done(resource, backend, method, code, seconds)

    def in_flight(self, backend: str) -> InFlight:
        """The in-flight count to inc()/dec() around a forwarded request."""
        return self.counts.in_flight(backend)

    def upstream_error(self, backend: str, kind: str) -> None:
        """`kind`: connect, timeout, reset, protocol or tls."""
        if kind not in UPSTREAM_ERROR_KINDS:
            raise ValueError(f"unknown upstream error kind {kind!r}")
        self.upstream_errors.labels(backend, kind).inc()

    def _new_series(self, key: SeriesKey) -> RequestSeries:
        resource, backend, method, code = key
        return RequestSeries(
            self.requests.labels(resource, backend, method, str(code)),
            self.duration.labels(resource, backend),
        )

    def _new_level(self, backend: str) -> InFlight:
        return InFlight(self.in_flight_requests.labels(backend))

    def tunnel(self, backend: str) -> Gauge:
        """The open-tunnels gauge of `backend`, to inc()/dec() around a tunnel (not hot: one
        per upgraded connection)."""
        return self.open_tunnels.labels(backend)

    def flush(self) -> None:
        """Add the hot-path counts to their prometheus_client children."""
        for series in self.counts.series.values():
            series.flush()
        for level in self.counts.levels.values():
            level.gauge.set(level.value)

    def routes_loaded(self, table: RouteTable) -> None:
        """Publish strangler_route_info for `table`, retiring the pairs of the previous one."""
        pairs = route_pairs(table)
        for resource, backend in self._route_pairs - pairs:
            # 0 first: in multiprocess mode the value file stays, and says 0 from now on.
            self.route_info.labels(resource, backend).set(0)
            if self._can_remove:
                self.route_info.remove(resource, backend)
        for resource, backend in pairs:
            self.route_info.labels(resource, backend).set(1)
        self._route_pairs = pairs

    def shadow_result(self, resource: str, result: str, kind: str | None = None) -> None:
        """`result`: SHADOW_RESULTS or SHADOW_NOISE; `kind`: a differing comparison's class."""
        self.shadow_comparisons.labels(resource, result).inc()
        if kind is not None:
            self.shadow_mismatches.labels(resource, kind).inc()

    def shadow_drop(self, resource: str) -> None:
        self.shadow_dropped.labels(resource).inc()

    def fallback(self, resource: str, from_backend: str, to_backend: str, code: int) -> None:
        """One request replayed on `to_backend` after `from_backend` answered `code`."""
        self.fallbacks.labels(resource, from_backend, to_backend, str(code)).inc()

    def pinned(self, resource: str, backend: str) -> None:
        """One request sent to `backend` by a pin of `resource` (only pinned requests pay)."""
        self.pinned_requests.labels(resource, backend).inc()

    def guard_rollback(self, resource: str) -> None:
        self.guard_rollbacks.labels(resource).inc()

    def guard_dry_run(self, resource: str) -> None:
        self.guard_dry_run_trips.labels(resource).inc()

    def resource_stages(self, current: Mapping[str, str], names: Iterable[str]) -> None:
        """strangler_resource_stage: 1 for each resource's `current` stage, 0 for the other
        `names`; resources no longer listed drop out (0 in multiprocess mode)."""
        names = tuple(names)
        for resource in self._staged - set(current):
            for name in names:
                self.resource_stage.labels(resource, name).set(0)
                if self._can_remove:
                    self.resource_stage.remove(resource, name)
        for resource, stage in current.items():
            for name in names:
                self.resource_stage.labels(resource, name).set(1 if name == stage else 0)
        self._staged = frozenset(current)

    def rollout_abort(self, resource: str) -> None:
        self.rollout_aborts.labels(resource).inc()

    def rollout_state(self, resource: str, state: str, states: Iterable[str]) -> None:
        """strangler_rollout_state: 1 for the plan's `state`, 0 for the other `states`."""
        for name in states:
            self.rollout_state_gauge.labels(resource, name).set(1 if name == state else 0)

    def reload_result(self, ok: bool) -> None:
        self.config_reloads.labels("success" if ok else "failure").inc()
        self.config_last_reload_success.set(1 if ok else 0)

    def table_revision(self, revision: int) -> None:
        if self.table_revision_gauge is not None:
            self.table_revision_gauge.set(revision)

    def store_up(self, up: bool) -> None:
        if self.store_up_gauge is not None:
            self.store_up_gauge.set(1 if up else 0)


async def flush_periodically(metrics: Metrics, seconds: float = FLUSH_SECONDS) -> None:
    """Flush every `seconds` until cancelled: what other workers' /metrics see of this one."""
    while True:
        await asyncio.sleep(seconds)
        metrics.flush()


def route_pairs(table: RouteTable) -> frozenset[tuple[str, str]]:
    """Every (resource, backend) a request may be sent to; unlisted resources as "other"."""
    pairs = {(OTHER_RESOURCE, table.default)}
    for route in table.routes.values():
        pairs.add((route.resource, route.backend))
        pairs.update((route.resource, backend) for backend in route.methods.values())
    return frozenset(pairs)


def collecting_registry(
    registry: CollectorRegistry, directory: Path | None = None
) -> CollectorRegistry:
    """The registry to read: `registry` itself, or one summing the value files of all workers
    in `directory` (`Settings.multiproc_dir`)."""
    if directory is None:
        return registry
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(directory))  # type: ignore[no-untyped-call]
    return merged


def samples(registry: CollectorRegistry, directory: Path | None = None) -> Iterator[Sample]:
    """Every sample of the proxy's metrics so far: of `registry`, or summed over all workers
    when `directory` holds their value files. The one way the proxy reads its metrics back."""
    for family in collecting_registry(registry, directory).collect():
        yield from family.samples


def exposition(registry: CollectorRegistry, directory: Path | None = None) -> tuple[bytes, str]:
    """The text exposition and its content type; summed over workers in multiprocess mode."""
    return generate_latest(collecting_registry(registry, directory)), CONTENT_TYPE_LATEST
