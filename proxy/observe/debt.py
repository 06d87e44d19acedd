"""The fallback debt: every request shape that hit a fallback code, with counts.

The migration's to-do list. When a route's backend answers a request with one of its
`fallback.on` codes, the forwarder records the request's shape here (`DebtRegistry.record`): the
path with ids replaced (`/bookings/7` -> `/bookings/{id}`), the codes, the "from -> to" backends,
and how many of those requests could not be replayed. `GET /-/debt` lists the shapes, most
counted first.

The registry is per process: with `--workers N` each worker shares a snapshot
(`proxy.observe.sharing`) and the admin endpoint merges them (`merge_debt`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.clock import iso_time

DEBT_LIMIT = 1000
SHAPE_LIMIT = 200
ID_SEGMENT = re.compile(
    r"[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def path_shape(path: str) -> str:
    """The path with ids replaced: `/bookings/7/customers/12` -> `/bookings/{id}/customers/{id}`."""
    segments = path.split("/")
    shaped = "/".join("{id}" if ID_SEGMENT.fullmatch(s) else s for s in segments)
    return shaped if len(shaped) <= SHAPE_LIMIT else shaped[:SHAPE_LIMIT] + "..."


@dataclass
class DebtEntry:
    resource: str
    method: str
    path: str
    count: int = 0
    not_replayed: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    backends: dict[str, int] = field(default_factory=dict)  # "drf -> legacy": count
    last_seen: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "method": self.method,
            "shape": f"{self.method} {self.path}",
            "path": self.path,
            "count": self.count,
            "not_replayed": self.not_replayed,
            "codes": {str(code): n for code, n in sorted(self.codes.items())},
            "backends": dict(self.backends),
            "last_seen": iso_time(self.last_seen),
        }


class DebtRegistry:
    """Request shapes that needed a fallback, with counts: the migration's to-do list.

    At most `limit` shapes are kept; a new shape beyond that evicts the least counted one.
    """

    def __init__(self, limit: int = DEBT_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, str, str], DebtEntry] = {}

    def record(
        self,
        resource: str,
        method: str,
        path: str,
        code: int,
        route: str,
        *,
        replayed: bool,
        now: float | None = None,
    ) -> DebtEntry:
        """Count one request of this shape answered with `code`; `route` is "from -> to"."""
        shape = path_shape(path)
        key = (resource, method, shape)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.limit:
                self._evict()
            entry = self._entries[key] = DebtEntry(resource, method, shape)
        entry.count += 1
        entry.not_replayed += 0 if replayed else 1
        entry.codes[code] = entry.codes.get(code, 0) + 1
        entry.backends[route] = entry.backends.get(route, 0) + 1
        entry.last_seen = time.time() if now is None else now
        return entry

    def entries(self, resource: str | None = None) -> list[DebtEntry]:
        """Most counted first (then most recent)."""
        chosen = [e for e in self._entries.values() if resource is None or e.resource == resource]
        return sorted(chosen, key=lambda e: (-e.count, -e.last_seen, e.method, e.path))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every entry as JSON, most counted first: what workers share."""
        return [entry.to_json() for entry in self.entries()]

    def _evict(self) -> None:
        key = min(self._entries, key=lambda k: (self._entries[k].count, self._entries[k].last_seen))
        del self._entries[key]


def merge_debt(
    entries: Iterable[Mapping[str, Any]], resource: str | None = None, limit: int = DEBT_LIMIT
) -> list[dict[str, Any]]:
    """Several workers' debt entries (`DebtEntry.to_json`s) as one list, one entry per shape,
    in `DebtRegistry.entries` order: most counted first, then most recent."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in entries:
        if resource is not None and entry["resource"] != resource:
            continue
        key = (entry["resource"], entry["method"], entry["path"])
        into = merged.get(key)
        if into is None:
            codes, backends = dict(entry["codes"]), dict(entry["backends"])
            merged[key] = {**entry, "codes": codes, "backends": backends}
            continue
        into["count"] += entry["count"]
        into["not_replayed"] += entry["not_replayed"]
        for field_name in ("codes", "backends"):
            counts = into[field_name]
            for name, count in entry[field_name].items():
                counts[name] = counts.get(name, 0) + count
        into["last_seen"] = max(into["last_seen"], entry["last_seen"])
    for into in merged.values():
        into["codes"] = dict(sorted(into["codes"].items(), key=lambda item: int(item[0])))
    ordered = sorted(merged.values(), key=lambda entry: (entry["method"], entry["path"]))
    ordered.sort(key=lambda entry: (entry["count"], entry["last_seen"]), reverse=True)
    return ordered[:limit]
