"""The shadow report: GET /-/diffs and `strangler diffs`, from the counters and kept mismatches.

The shadow workers (`proxy.migration.shadow`) count every comparison and keep the last mismatches
per resource; this module turns those into the admin endpoint's body. The counters are read from
the registry (`proxy.observe.metrics.samples`: summed over workers in multiprocess mode), the
kept mismatches are this worker's `Shadows.snapshot()` merged with the other workers' shared ones
(`proxy.observe.sharing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.migration.shadow import KEEP, Shadows
from proxy.observe.metrics import samples
from proxy.routing.model import RouteTable, Shadow


@dataclass(frozen=True)
class Figures:
    """A resource's shadow counters so far (summed over workers)."""

    match: float = 0.0
    mismatch: float = 0.0
    error: float = 0.0
    dropped: float = 0.0

    @property
    def compared(self) -> float:
        return self.match + self.mismatch + self.error

    @property
    def match_rate(self) -> float | None:
        """Matches over comparisons (errors count against it); None before any comparison."""
        return self.match / self.compared if self.compared else None

    def to_json(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "mismatch": self.mismatch,
            "error": self.error,
            "dropped": self.dropped,
            "match_rate": self.match_rate,
        }


def figures(registry: CollectorRegistry, directory: Path | None = None) -> Mapping[str, Figures]:
    """Shadow counters per resource, from the registry (all workers when `directory` holds
    their value files)."""
    counts: dict[str, dict[str, float]] = {}
    for sample in samples(registry, directory):
        if sample.name == "strangler_shadow_comparisons_total":
            key = sample.labels["result"]
        elif sample.name == "strangler_shadow_dropped_total":
            key = "dropped"
        else:
            continue
        totals = counts.setdefault(sample.labels["resource"], {})
        totals[key] = totals.get(key, 0.0) + sample.value
    return {resource: Figures(**totals) for resource, totals in counts.items()}


def shadow_json(shadow: Shadow | None) -> dict[str, Any] | None:
    if shadow is None:
        return None
    return {"backend": shadow.backend, "percent": shadow.percent, "ignore": list(shadow.ignore)}


def diffs_report(
    shadows: Shadows | None,
    table: RouteTable,
    registry: CollectorRegistry,
    resource: str | None,
    limit: int,
    shared: Sequence[Mapping[str, list[dict[str, Any]]]] = (),
    directory: Path | None = None,
) -> dict[str, Any] | None:
    """The body of GET /-/diffs; None when `resource` is neither in the table nor ever compared.

    `shared`: the other workers' `Shadows.snapshot()`s (`proxy.observe.sharing`), merged with
    this one's; `directory`: where the workers' metric values are (`Settings.shared_directory`).

    Without a resource: a summary of every resource shadowed now or compared before::

        {"resources": {"bookings": {"shadow": {"backend": "drf", "percent": 100.0, "ignore": []},
                                    "match": 98.0, "mismatch": 2.0, "error": 0.0, "dropped": 0.0,
                                    "match_rate": 0.98, "kept": 2}}}

    With one: its configuration, counters and last `limit` mismatches, newest first::

        {"resource": "bookings", "shadow": {...}, "match": 98.0, ..., "mismatches": [
            {"time": "2026-11-28T10:00:00.123Z", "method": "GET", "path": "/bookings/7",
             "request_id": "…", "backend": "legacy", "shadow_backend": "drf",
             "live_status": 200, "shadow_status": 200, "differences": [
                {"field": "$.contact_email", "kind": "changed", "live": "a@x", "shadow": "b@x"}]}]}
    """
    counts = figures(registry, directory)
    kept = merge_mismatches([{} if shadows is None else shadows.snapshot(), *shared])

    def entry(name: str) -> dict[str, Any]:
        route = table.routes.get(name)
        return {
            "shadow": shadow_json(None if route is None else route.shadow),
            **counts.get(name, Figures()).to_json(),
        }

    if resource is None:
        shadowed = {name for name, route in table.routes.items() if route.shadow is not None}
        names = sorted(shadowed | set(counts) | set(kept))
        return {
            "resources": {name: {**entry(name), "kept": len(kept.get(name, ()))} for name in names}
        }
    if resource not in table.routes and resource not in counts and resource not in kept:
        return None
    return {"resource": resource, **entry(resource), "mismatches": kept.get(resource, [])[:limit]}


def merge_mismatches(
    snapshots: Iterable[Mapping[str, list[dict[str, Any]]]], keep: int = KEEP
) -> dict[str, list[dict[str, Any]]]:
    """Several workers' kept mismatches as one: per resource the newest `keep`, newest first."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        for resource, mismatches in snapshot.items():
            merged.setdefault(resource, []).extend(mismatches)
    for mismatches in merged.values():
        mismatches.sort(key=lambda mismatch: str(mismatch["time"]), reverse=True)
        del mismatches[keep:]
    return merged
