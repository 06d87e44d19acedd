"""`strangler ready` and the lifecycle parts of `strangler status` as text (for `cli.py`).

Reads only the admin API's JSON (GET /-/ready/{resource}, GET /-/routes), so it imports nothing.
"""

from __future__ import annotations

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


def progress_line(body: Mapping[str, Any]) -> str:
    """`progress:    3 legacy, 1 new; last 5m: legacy 80.0%, drf 20.0%` (GET /-/routes)."""
    progress = body.get("progress")
    return f"progress:    {'-' if progress is None else progress['text']}"
