"""The shadow report: GET /-/diffs and `strangler diffs`, from the counters and kept mismatches.

The shadow workers (`proxy.migration.shadow`) count every comparison and keep the last mismatches
per resource; this module turns those into the admin endpoint's body. The counters are read from
the registry (`proxy.observe.metrics.samples`: summed over workers in multiprocess mode), the
kept mismatches are this worker's `Shadows.snapshot()` merged with the other workers' shared ones
(`proxy.observe.sharing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.migration.diff import CLASSES, worst
from proxy.migration.noise import NOISE_AFTER, ignore_rules, merge_noise
from proxy.migration.shadow import KEEP, Shadows
from proxy.observe.metrics import samples
from proxy.routing.model import RouteTable, Shadow


@dataclass(frozen=True)
class Figures:
    """A resource's shadow counters so far (summed over workers)."""

    match: float = 0.0
    mismatch: float = 0.0
    noise: float = 0.0
    error: float = 0.0
    dropped: float = 0.0
    classes: Mapping[str, float] = field(default_factory=dict)  # mismatches by class

    @property
    def compared(self) -> float:
        """Comparisons the match rate is over: noise-only ones are neither for nor against."""
        return self.match + self.mismatch + self.error

    @property
    def match_rate(self) -> float | None:
        """Matches over comparisons (errors count against it); None before any comparison."""
        return self.match / self.compared if self.compared else None

    @property
    def worst(self) -> str | None:
        return worst(kind for kind, count in self.classes.items() if count)

    def to_json(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "mismatch": self.mismatch,
            "noise": self.noise,
            "error": self.error,
            "dropped": self.dropped,
            "match_rate": self.match_rate,
            "classes": {kind: self.classes.get(kind, 0.0) for kind in CLASSES},
            "worst": self.worst,
        }


def figures(registry: CollectorRegistry, directory: Path | None = None) -> Mapping[str, Figures]:
    """Shadow counters per resource, from the registry (all workers when `directory` holds
    their value files)."""
    counts: dict[str, dict[str, float]] = {}
    classes: dict[str, dict[str, float]] = {}
    for sample in samples(registry, directory):
        resource = sample.labels.get("resource", "")
        if sample.name == "strangler_shadow_comparisons_total":
            key = sample.labels["result"]
        elif sample.name == "strangler_shadow_dropped_total":
            key = "dropped"
        elif sample.name == "strangler_shadow_mismatches_total":
            by_class = classes.setdefault(resource, {})
            kind = sample.labels["class"]
            by_class[kind] = by_class.get(kind, 0.0) + sample.value
            continue
        else:
            continue
        totals = counts.setdefault(resource, {})
        totals[key] = totals.get(key, 0.0) + sample.value
    return {
        resource: Figures(**counts.get(resource, {}), classes=classes.get(resource, {}))
        for resource in counts.keys() | classes.keys()
    }


def shadow_json(shadow: Shadow | None) -> dict[str, Any] | None:
    if shadow is None:
        return None
    return {
        "backend": shadow.backend,
        "percent": shadow.percent,
        "ignore": list(shadow.ignore),
        "learn_noise": shadow.learn_noise,
        "noise_after": shadow.noise_after,
        "writes": "dry-run" if shadow.writes else "off",
    }


def diffs_report(
    shadows: Shadows | None,
    table: RouteTable,
    registry: CollectorRegistry,
    resource: str | None,
    limit: int,
    shared: Sequence[Mapping[str, list[dict[str, Any]]]] = (),
    directory: Path | None = None,
    shared_noise: Sequence[Mapping[str, Mapping[str, int]]] = (),
) -> dict[str, Any] | None:
    """The body of GET /-/diffs; None when `resource` is neither in the table nor ever compared.

    `shared`, `shared_noise`: the other workers' `Shadows.snapshot()`s and noise books
    (`proxy.observe.sharing`), merged with this one's; `directory`: where the workers' metric
    values are (`Settings.shared_directory`).

    Without a resource: a summary of every resource shadowed now or compared before::

        {"resources": {"bookings": {"shadow": {"backend": "drf", "percent": 100.0, ...},
                                    "match": 98.0, "mismatch": 2.0, "noise": 0.0, "error": 0.0,
                                    "dropped": 0.0, "match_rate": 0.98,
                                    "classes": {"status": 1.0, "schema": 0.0, "value": 1.0,
                                                "header": 0.0, "noise": 0.0},
                                    "worst": "status", "kept": 2}}}

    With one: its configuration, counters, learned noise and last `limit` mismatches of each
    class, most severe class first, newest first within a class::

        {"resource": "bookings", "shadow": {...}, "match": 98.0, ..., "worst": "status",
         "noise_paths": {"$.meta.generated_at": 7}, "noise_rules": "ignore: [...]",
         "mismatches": [{"time": "2026-11-28T10:00:00.123Z", "method": "POST",
            "path": "/bookings/resource", "class": "status", "dry_run": true, ...,
            "differences": [{"field": "status", "kind": "changed", "class": "status",
                             "live": 201, "shadow": 404}],
            "request": {"headers": [["Content-Type", "application/json"]], "body": "{...}"},
            "live": {"content_type": "application/json", "body": "{...}"}}]}
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
    books = [{} if shadows is None else shadows.noise.snapshot(), *shared_noise]
    paths = merge_noise(books).get(resource, {})
    route = table.routes.get(resource)
    shadow = None if route is None else route.shadow
    after = NOISE_AFTER if shadow is None else shadow.noise_after
    declared = () if shadow is None else shadow.ignore
    return {
        "resource": resource,
        **entry(resource),
        "noise_paths": paths,
        "noise_rules": ignore_rules(paths, after, keep=declared),
        "mismatches": by_class(kept.get(resource, []), limit),
    }


def by_class(mismatches: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` mismatches of each class, most severe class first."""
    ordered: list[dict[str, Any]] = []
    for kind in CLASSES:
        ordered += [m for m in mismatches if m.get("class", "value") == kind][:limit]
    return ordered


def merge_mismatches(
    snapshots: Iterable[Mapping[str, list[dict[str, Any]]]], keep: int = KEEP
) -> dict[str, list[dict[str, Any]]]:
    """Several workers' kept mismatches as one: per resource and class the newest `keep`,
    newest first."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        for resource, mismatches in snapshot.items():
            merged.setdefault(resource, []).extend(mismatches)
    for resource, mismatches in merged.items():
        mismatches.sort(key=lambda mismatch: str(mismatch["time"]), reverse=True)
        seen: dict[str, int] = {}
        newest = []
        for mismatch in mismatches:
            kind = mismatch.get("class", "value")
            seen[kind] = seen.get(kind, 0) + 1
            if seen[kind] <= keep:
                newest.append(mismatch)
        merged[resource] = newest
    return merged
