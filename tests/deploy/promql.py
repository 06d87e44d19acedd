"""What the deploy tests share: the proxy's exported metric names and a promtool runner."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.support import METRICS, ROOT

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"

# The metrics contract (tests.support.METRICS): name -> type. Deploy files may use only these.
DESIGN_METRICS = {name: kind for name, (kind, _) in METRICS.items()}

# Metric names only; recording rules are `strangler:...` and never match.
METRIC_NAME = re.compile(r"\bstrangler_[a-z0-9_]*[a-z0-9]")


def series_names(metrics: dict[str, str]) -> frozenset[str]:
    """The series names a scrape shows: a histogram's _bucket/_sum/_count, a counter's _total.

    >>> sorted(series_names({"x_seconds": "histogram", "y_total": "counter"}))
    ['x_seconds_bucket', 'x_seconds_count', 'x_seconds_sum', 'y_total']
    """
    names: set[str] = set()
    for name, kind in metrics.items():
        if kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif kind == "counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        else:
            names.add(name)
    return frozenset(names)


EXPORTED = series_names(DESIGN_METRICS)


def registered_metrics(registry: CollectorRegistry) -> dict[str, str]:
    """Family name -> type of everything registered on `registry` (counters without _total)."""
    return {family.name: family.type for family in registry.collect()}


def metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def promtool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run promtool; a missing promtool fails the test (Debian package `prometheus`)."""
    binary = shutil.which("promtool")
    assert binary is not None, "promtool not found: install Debian's prometheus (make test does)"
    return subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=60
    )
