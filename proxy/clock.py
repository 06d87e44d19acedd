"""Wall-clock instants as the proxy writes them: ISO 8601 in UTC with a `Z`.

Every timestamp the proxy shows or stores (the audit log, /-/routes, /-/stats, /-/debt, /-/diffs)
goes through `iso_time` (and is read back with `from_iso`). Imports nothing from the proxy, so
every package may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def from_iso(text: str) -> float:
    """`iso_time`'s text back to seconds since the epoch (ValueError when it is not one).

    >>> from_iso("2026-11-28T10:00:00.123Z")
    1795860000.123
    """
    return datetime.fromisoformat(text).timestamp()


def iso_time(timestamp: float | None = None, timespec: str = "milliseconds") -> str:
    """`timestamp` (seconds since the epoch; None: now) in UTC, to `timespec` precision.

    >>> iso_time(1795860000.1234)
    '2026-11-28T10:00:00.123Z'
    >>> iso_time(1795860000.1234, "seconds")
    '2026-11-28T10:00:00Z'
    """
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
