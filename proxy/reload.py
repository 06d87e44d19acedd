"""Reload routes.yaml: on SIGHUP (`reload_now`) and on changes seen by a directory watcher.

The watcher watches the DIRECTORY holding routes.yaml, not the file: editors that save by
writing a new file and renaming it over the old one, and Kubernetes ConfigMap updates (which
swap a `..data` symlink to a new timestamped directory), replace the file's inode, which a
watch on the file itself would lose. Events are filtered to the paths whose change can change
what routes.yaml resolves to (the file, each symlink on the way, the final target), and the
watched directories are recomputed whenever that chain changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from watchfiles import Change, awatch

from proxy.routes import RoutesError, load_table
from proxy.state import ProxyState

log = logging.getLogger(__name__)

DEBOUNCE_MS = 50
STEP_MS = 5
MAX_LINKS = 40


def reload_now(state: ProxyState) -> bool:
    """Load the routes file; swap `state.table` in one assignment if it is valid and new.

    An invalid or missing file keeps the table in force, logs every `file:line: message`,
    records it as `state.last_reload_error` and counts a failed reload. Returns success.
    """
    try:
        table = load_table(state.settings.routes)
    except RoutesError as exc:
        state.last_reload_error = "\n".join(exc.errors)
        for error in exc.errors:
            log.error("routes reload failed: %s", error)
        state.metrics.reload_result(False)
        return False
    if table.sha256 == state.table.sha256 and state.last_reload_error is None:
        return True
    state.table = table
    state.loaded_at = time.time()
    state.last_reload_error = None
    state.metrics.routes_loaded(table)
    state.metrics.reload_result(True)
    log.info("routes reloaded from %s (sha256 %s)", table.source, table.sha256[:12])
    return True


def resolution_chain(path: Path) -> tuple[str, ...]:
    """Absolute paths whose change may change what `path` resolves to, in resolution order.

    Kubelet's `/cfg/routes.yaml -> ..data/routes.yaml` with `/cfg/..data -> ..2026_11_28` gives
    `/cfg/routes.yaml`, `/cfg/..data/routes.yaml`, `/cfg/..data`, `/cfg/..2026_11_28/routes.yaml`.
    Symlinks are followed on the file itself and on its immediate parent directory.
    """
    chain = [os.path.abspath(path)]
    current = chain[0]
    for _ in range(MAX_LINKS):
        parent, name = os.path.split(current)
        if os.path.islink(current):
            current = os.path.normpath(os.path.join(parent, os.readlink(current)))
        elif os.path.islink(parent):
            chain.append(parent)
            target = os.path.normpath(os.path.join(os.path.dirname(parent), os.readlink(parent)))
            current = os.path.join(target, name)
        else:
            break
        chain.append(current)
    return tuple(chain)


def watched_directories(chain: Iterable[str]) -> tuple[str, ...]:
    """The existing directories holding a link of the chain (watched non-recursively)."""
    found = {os.path.dirname(link) for link in chain}
    return tuple(sorted(directory for directory in found if os.path.isdir(directory)))


class ChainFilter:
    """watchfiles filter: keep only events on a path of the resolution chain."""

    def __init__(self, chain: Iterable[str]) -> None:
        self.paths = frozenset(chain)

    def __call__(self, change: Change, path: str) -> bool:
        return path in self.paths


async def watch_routes(
    state: ProxyState,
    *,
    ready: asyncio.Event | None = None,
    debounce_ms: int = DEBOUNCE_MS,
    step_ms: int = STEP_MS,
) -> None:
    """Reload whenever the routes file may have changed; runs until cancelled.

    `ready` is set once the first watch is in place (tests wait for it).
    """
    while True:
        chain = resolution_chain(state.settings.routes)
        directories = watched_directories(chain)
        stop = asyncio.Event()
        changes = awatch(
            *directories,
            stop_event=stop,
            watch_filter=ChainFilter(chain),
            debounce=debounce_ms,
            step=step_ms,
            recursive=False,
        )
        # Start the watch, then reload once: a change made before it was in place is not lost.
        pending = asyncio.ensure_future(anext(changes))
        try:
            await asyncio.sleep(0)
            reload_now(state)
            if ready is not None:
                ready.set()
            while True:
                await pending
                reload_now(state)
                chain = resolution_chain(state.settings.routes)
                if watched_directories(chain) != directories:
                    break
                pending = asyncio.ensure_future(anext(changes))
        finally:
            stop.set()
            with suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
            await changes.aclose()
