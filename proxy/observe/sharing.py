"""What each worker shares with the others under `--workers N`: JSON snapshots in a directory.

Counters are summed over workers by prometheus_client's multiprocess mode. Three things are not
counters: the fallback debt (request shapes, `/-/debt`), the last shadow mismatches and the
learned shadow noise (`/-/diffs`). Each worker keeps them in memory, and an admin request
reaches whichever worker accepted its connection. So every `SHARE_SECONDS` (and when it stops)
each worker writes a snapshot of each to `<directory>/<kind>-<pid>.json`, and the admin
endpoints merge the other workers' snapshots with their own live state: a worker's latest
entries reach the others within `SHARE_SECONDS`. The shadow workers also take the others' noise
counts, so noise is learned from every worker's samples. The directory is the workers'
PROMETHEUS_MULTIPROC_DIR (`Settings.shared_directory`), which the supervisor creates fresh and
removes at exit; with one process (no directory) nothing is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SHARE_SECONDS = 1.0
DEBT = "debt"
MISMATCHES = "mismatches"
NOISE = "noise"  # learned shadow noise: path counts per resource
log = logging.getLogger(__name__)


def publish(directory: Path, kind: str, payload: Any, pid: int | None = None) -> None:
    """Replace this worker's snapshot of `kind` atomically (write, then rename)."""
    pid = os.getpid() if pid is None else pid
    final = directory / f"{kind}-{pid}.json"
    partial = directory / f".{kind}-{pid}.json.tmp"
    partial.write_text(json.dumps(payload))
    os.replace(partial, final)


def others(directory: Path | None, kind: str, pid: int | None = None) -> list[Any]:
    """The other workers' latest snapshots of `kind` (unreadable ones skipped, with a log line)."""
    if directory is None:
        return []
    pid = os.getpid() if pid is None else pid
    found = []
    for path in sorted(directory.glob(f"{kind}-*.json")):
        if path.name == f"{kind}-{pid}.json":
            continue
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("skipping the unreadable worker snapshot %s: %s", path.name, exc)
    return found


async def share_periodically(
    directory: Path,
    snapshots: Mapping[str, Callable[[], Any]],
    seconds: float = SHARE_SECONDS,
    receivers: Mapping[str, Callable[[list[Any]], None]] | None = None,
) -> None:
    """Publish every snapshot every `seconds` until cancelled, and once more then; after each
    publication, hand each of `receivers` the other workers' snapshots of its kind."""
    try:
        while True:
            await asyncio.sleep(seconds)
            share(directory, snapshots)
            for kind, receive in (receivers or {}).items():
                receive(others(directory, kind))
    finally:
        share(directory, snapshots)


def share(directory: Path, snapshots: Mapping[str, Callable[[], Any]]) -> None:
    for kind, snapshot in snapshots.items():
        try:
            publish(directory, kind, snapshot())
        except OSError as exc:  # a full or vanished directory must not stop the worker
            log.warning("could not share %s with the other workers: %s", kind, exc)
