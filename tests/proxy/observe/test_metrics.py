"""proxy.observe.metrics: names, types, labels, bounded label values, multiprocess exposition."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from proxy.observe.metrics import DURATION_BUCKETS, Metrics, exposition, samples
from proxy.routing.parser import parse_table
from proxy.settings import shared_directory
from tests.support import METRICS, ROOT
from tests.support.control import ROUTES

DESIGN_TABLE = {  # family names: prometheus_client drops a counter's _total
    name.removesuffix("_total"): (kind, set(labels)) for name, (kind, labels) in METRICS.items()
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@dataclass(frozen=True)
class Totals:
    requests: float
    errors: float


def request_totals(registry: CollectorRegistry, environ: Mapping[str, str]) -> dict[str, Totals]:
    """Requests and 5xx answers so far per resource label (all workers in multiprocess mode)."""
    counts: dict[str, list[float]] = {}
    for sample in samples(registry, shared_directory(environ)):
        if sample.name != "strangler_requests_total":
            continue
        entry = counts.setdefault(sample.labels["resource"], [0.0, 0.0])
        entry[0] += sample.value
        if sample.labels["code"].startswith("5"):
            entry[1] += sample.value
    return {resource: Totals(*values) for resource, values in counts.items()}


def test_every_metric_of_the_design(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.request_done("bookings", "drf", "GET", 200, 0.01)
    metrics.upstream_error("drf", "connect")
    metrics.in_flight("drf").inc()
    metrics.routes_loaded(parse_table(ROUTES, environ={}))
    metrics.reload_result(True)
    metrics.shadow_comparisons.labels("bookings", "match").inc()
    metrics.shadow_drop("bookings")
    metrics.shadow_result("bookings", "mismatch", "status")
    metrics.fallbacks.labels("bookings", "drf", "legacy", "404").inc()
    metrics.guard_rollback("bookings")
    metrics.pinned("bookings", "legacy")
    metrics.guard_dry_run("bookings")
    metrics.tunnel("drf").inc()
    metrics.resource_stages({"bookings": "new"}, ("legacy", "new"))
    metrics.rollout_abort("bookings")
    metrics.rollout_state("bookings", "aborted", ("running", "aborted"))
    body, content_type = exposition(registry)
    assert content_type.startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    found = {}
    for name, family in families.items():
        if name.endswith("_created"):  # text format 0.0.4 shows a counter's _created apart
            continue
        labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        found[name] = (family.type, labels)
    assert found == DESIGN_TABLE


def test_request_done(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.request_done("bookings", "drf", "GET", 200, 0.003)
    metrics.request_done("bookings", "drf", "GET", 200, 0.2)
    metrics.request_done("other", "legacy", "PROPFIND", 405, 0.001)
    metrics.request_done("other", "legacy", "get", 404, 0.001)
    assert value(registry, "strangler_requests_total", resource="bookings", backend="drf",
                 method="GET", code="200") == 2.0  # fmt: skip
    assert value(registry, "strangler_requests_total", resource="other", backend="legacy",
                 method="other", code="405") == 1.0  # fmt: skip
    assert value(registry, "strangler_requests_total", resource="other", backend="legacy",
                 method="other", code="404") == 1.0  # fmt: skip
    duration = "strangler_request_duration_seconds"
    assert value(registry, f"{duration}_count", resource="bookings", backend="drf") == 2.0
    assert value(registry, f"{duration}_bucket", resource="bookings", backend="drf",
                 le="0.005") == 1.0  # fmt: skip
    assert value(registry, f"{duration}_bucket", resource="bookings", backend="drf",
                 le="0.0005") == 0.0  # fmt: skip
    assert value(registry, f"{duration}_bucket", resource="bookings", backend="drf",
                 le="10.0") == 2.0  # fmt: skip


DURATIONS = [0.0, 0.0005, 0.00051, 0.005, 0.2, 0.25, 1.0, 9.99, 10.0, 10.01, 300.0]


def test_counted_durations_expose_as_observed_ones(registry: CollectorRegistry,
                                                   metrics: Metrics) -> None:  # fmt: skip
    """Counting on the hot path and flushing gives what one observe() per request would give,
    bounds included (an observation equal to a bound is in that bucket); reads never count
    twice."""
    reference = CollectorRegistry()
    histogram = Histogram("strangler_request_duration_seconds", "", ("resource", "backend"),
                          buckets=DURATION_BUCKETS, registry=reference)  # fmt: skip
    for seconds in DURATIONS:
        metrics.request_done("tours", "drf", "GET", 200, seconds)
        histogram.labels("tours", "drf").observe(seconds)
        if seconds == 0.2:  # a read in the middle flushes part of them
            assert value(registry, "strangler_requests_total", resource="tours", backend="drf",
                         method="GET", code="200") == 5.0  # fmt: skip

    def samples(source: CollectorRegistry) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted(
            (sample.name, sorted(sample.labels.items()), sample.value)
            for family in source.collect()
            if family.name == "strangler_request_duration_seconds"
            for sample in family.samples
            if not sample.name.endswith("_created")
        )

    assert samples(registry) == samples(reference)
    assert samples(registry) == samples(reference)  # a second read adds nothing
    assert value(registry, "strangler_requests_total", resource="tours", backend="drf",
                 method="GET", code="200") == len(DURATIONS)  # fmt: skip


def test_label_children_are_cached(metrics: Metrics) -> None:
    metrics.request_done("bookings", "drf", "GET", 200, 0.01)
    metrics.request_done("bookings", "drf", "GET", 200, 0.01)
    metrics.request_done("bookings", "drf", "X-RANDOM-1", 200, 0.01)
    metrics.request_done("bookings", "drf", "X-RANDOM-2", 200, 0.01)
    assert len(metrics.counts.series) == 2
    assert metrics.in_flight("drf") is metrics.in_flight("drf")


def test_upstream_errors_and_in_flight(registry: CollectorRegistry, metrics: Metrics) -> None:
    for kind in ("connect", "timeout", "reset", "protocol", "timeout"):
        metrics.upstream_error("legacy", kind)
    assert value(registry, "strangler_upstream_errors_total", backend="legacy",
                 kind="timeout") == 2.0  # fmt: skip
    with pytest.raises(ValueError, match="unknown upstream error kind 'dns'"):
        metrics.upstream_error("legacy", "dns")
    gauge = metrics.in_flight("legacy")
    gauge.inc()
    gauge.inc()
    gauge.dec()
    assert value(registry, "strangler_in_flight_requests", backend="legacy") == 1.0


def test_route_info_follows_the_table(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.routes_loaded(parse_table(ROUTES, environ={}))
    pairs = {
        (sample.labels["resource"], sample.labels["backend"])
        for family in registry.collect()
        if family.name == "strangler_route_info"
        for sample in family.samples
    }
    assert pairs == {
        ("other", "legacy"),
        ("bookings", "legacy"),
        ("customers", "legacy"),
        ("itineraries", "legacy"),
        ("itineraries", "drf"),
        ("tours", "drf"),
    }
    metrics.routes_loaded(parse_table(ROUTES.replace("tours: drf", "tours: legacy"), environ={}))
    assert value(registry, "strangler_route_info", resource="tours", backend="legacy") == 1.0
    assert value(registry, "strangler_route_info", resource="tours", backend="drf") is None


def test_reload_result(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.reload_result(True)
    metrics.reload_result(False)
    metrics.reload_result(False)
    assert value(registry, "strangler_config_reloads_total", result="success") == 1.0
    assert value(registry, "strangler_config_reloads_total", result="failure") == 2.0
    assert value(registry, "strangler_config_last_reload_success") == 0.0


def test_request_totals(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.request_done("bookings", "drf", "GET", 200, 0.01)
    metrics.request_done("bookings", "drf", "GET", 502, 0.01)
    metrics.request_done("bookings", "legacy", "POST", 503, 0.01)
    metrics.request_done("other", "legacy", "GET", 404, 0.01)
    totals = request_totals(registry, environ={})
    assert {name: (t.requests, t.errors) for name, t in totals.items()} == {
        "bookings": (3.0, 2.0),
        "other": (1.0, 0.0),
    }


WORKER = """
import sys
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import mark_process_dead
from proxy.observe.metrics import Metrics
metrics = Metrics(CollectorRegistry(), multiprocess=True)
for _ in range(int(sys.argv[1])):
    metrics.request_done("bookings", "drf", "GET", 200, 0.01)
metrics.in_flight("drf").inc()
metrics.reload_result(sys.argv[1] == "3")
metrics.flush()  # what a worker does every FLUSH_SECONDS and when it stops
"""

EXPOSE = """
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import mark_process_dead
from proxy.observe.metrics import exposition
from proxy.settings import Settings
print(exposition(CollectorRegistry(), Settings.from_env().shared_directory)[0].decode())
"""


def test_multiprocess_exposition_sums_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in ("3", "4"):  # two workers, one after the other; the second's reload fails
        subprocess.run([sys.executable, "-c", WORKER, count], env=env, cwd=ROOT, check=True)
    lines = expose(env)
    requests = 'strangler_requests_total{backend="drf",code="200",method="GET",resource="bookings"}'
    assert f"{requests} 7.0" in lines
    assert 'strangler_config_reloads_total{result="success"} 1.0' in lines
    assert 'strangler_config_reloads_total{result="failure"} 1.0' in lines
    assert "strangler_config_last_reload_success 0.0" in lines  # the most recent wins
    assert 'strangler_in_flight_requests{backend="drf"} 2.0' in lines
    # livesum gauges drop a worker once it is marked dead (the server's job when one exits)
    for path in tmp_path.glob("gauge_livesum_*.db"):
        mark_process_dead(int(path.stem.rsplit("_", 1)[1]), str(tmp_path))
    lines = expose(env)
    assert not [line for line in lines if line.startswith("strangler_in_flight_requests{")]
    assert f"{requests} 7.0" in lines


def expose(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", EXPOSE],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.splitlines()


def test_a_proxy_without_a_store_exports_no_store_gauges() -> None:
    """A proxy on routes.yaml has no store: no `strangler_store_up 0` to fire an alert on it."""
    registry = CollectorRegistry()
    Metrics(registry, store=False)
    body, _ = exposition(registry)
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert "strangler_store_up" not in names
    assert "strangler_table_revision" not in names
    assert "strangler_requests" in names  # the rest is there


def test_a_replica_of_a_store_exports_both_store_gauges() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, store=True)
    metrics.store_up(True)
    metrics.table_revision(42)
    assert registry.get_sample_value("strangler_store_up") == 1.0
    assert registry.get_sample_value("strangler_table_revision") == 42.0
