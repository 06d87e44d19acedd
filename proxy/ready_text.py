"""`strangler ready` and parts of `strangler status` as text: the progress line, the PINNED
column, the groups; the rates of `status` and `diffs` (for `cli.py`, `diffs_commands.py`).

Reads only the admin API's JSON (GET /-/ready/{resource}, GET /-/routes), so it imports nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, TextIO

MARKS = {"ok": "ok  ", "fail": "FAIL", "skip": "-   "}


def print_ready(body: Mapping[str, Any], out: TextIO) -> None:
    """The verdict, then one line per check::

    bookings (canary 5%): NOT READY  (last 300 s; min 200 requests)
      ok    new backend  drf against legacy
      FAIL  errors       120 requests, 5xx 0.0% vs 0.1%: fewer than 200 requests
    """
    verdict = "READY" if body["ready"] else "NOT READY"
    window = f"last {body['window_seconds']:.0f} s; min {body['criteria']['min_requests']} requests"
    print(f"{body['resource']} ({body['stage']}): {verdict}  ({window})", file=out)
    width = max(len(check["name"]) for check in body["checks"])
    for check in body["checks"]:
        mark = MARKS[check["result"]]
        print(f"  {mark}  {check['name'].ljust(width)}  {check['text']}", file=out)


def percent(rate: float | None) -> str:
    """`0.98` -> `98.0%`; None (nothing compared yet) -> `-`."""
    return "-" if rate is None else f"{rate:.1%}"


def progress_line(body: Mapping[str, Any]) -> str:
    """`progress:    3 legacy, 1 new; last 5m: legacy 80.0%, drf 20.0%` (GET /-/routes)."""
    progress = body.get("progress")
    return f"progress:    {'-' if progress is None else progress['text']}"


def pinned_column(body: Mapping[str, Any]) -> list[str] | None:
    """`strangler status`'s PINNED column (header, one cell per resource, then "(other)"'s) from
    GET /-/routes: pins per backend (`2->legacy`); None when no resource pins a client."""
    resources: Mapping[str, Mapping[str, Any]] = body["resources"]
    if not any(route.get("clients") for route in resources.values()):
        return None
    cells = ["PINNED"]
    for route in resources.values():
        counts = Counter(pinned["backend"] for pinned in route.get("clients") or ())
        cells.append(",".join(f"{n}->{name}" for name, n in sorted(counts.items())) or "-")
    return [*cells, "-"]


def print_groups(body: Mapping[str, Any], out: TextIO) -> None:
    """`group reservations: bookings, customers`, one line per group of GET /-/routes."""
    groups: Mapping[str, list[str]] = body.get("groups") or {}
    for name, members in groups.items():
        print(f"group {name}: {', '.join(members)}", file=out)
