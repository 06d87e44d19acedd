"""Reload routes.yaml: on SIGHUP (`reload_on`), on changes seen by a directory watcher
(`watch_routes`), and after an admin flip or a guard rollback (`reload_now`).

The file is read and parsed in a thread, never on the event loop: a table of 60,000 routes takes
seconds to parse, and traffic must not wait for it.

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

from proxy.routing.routes import RoutesError, RouteTable, load_table
from proxy.state import ProxyState

log = logging.getLogger(__name__)

DEBOUNCE_MS = 50
STEP_MS = 5
MAX_LINKS = 40


async def reload_now(state: ProxyState) -> bool:
    """Load the routes file in a thread; swap `state.table` in one assignment if it is valid and
    new. Returns whether the file this reload read was valid.

    Reloads may overlap (watcher, SIGHUP, admin flip, guard rollback). Each takes a ticket as it
    starts; an outcome is applied only when no reload started later has reported yet, so an older
    parse never replaces a newer one (nor an older error a newer table).

    An invalid, missing or oversized file keeps the table in force, logs every
    `file:line: message`, records it as `state.last_reload_error` and counts a failed reload.
    """
    state.reloads_started += 1
    ticket = state.reloads_started
    settings = state.settings
    try:
        table = await asyncio.to_thread(
            load_table, settings.routes, None, settings.max_routes_bytes
        )
    except RoutesError as exc:
        if _newest(state, ticket):
            _failed(state, exc)
        return False
    if not _newest(state, ticket):
        return True
    if table.sha256 == state.table.sha256 and state.last_reload_error is None:
        return True
    state.table = table
    state.loaded_at = time.time()
    state.last_reload_error = None
    state.metrics.reload_result(True)
    log.info("routes reloaded from %s (sha256 %s)", table.source, table.sha256[:12])
    await _publish_routes(state, table)
    return True


def _newest(state: ProxyState, ticket: int) -> bool:
    """Whether reload `ticket` is the latest to report; if so, it now is the one reported."""
    if ticket < state.reload_reported:
        log.info("routes reload %d superseded by reload %d", ticket, state.reload_reported)
        return False
    state.reload_reported = ticket
    return True


def _failed(state: ProxyState, error: RoutesError) -> None:
    state.last_reload_error = "\n".join(error.errors)
    for line in error.errors:
        log.error("routes reload failed: %s", line)
    state.metrics.reload_result(False)


async def _publish_routes(state: ProxyState, table: RouteTable) -> None:
    """strangler_route_info for `table`, set in a thread (one series per route: 60,000 take
    seconds), one table at a time and in the order the tables were swapped in."""
    async with state.route_info_lock:
        if state.table is table:  # else a newer table was swapped in and publishes itself
            await asyncio.to_thread(state.metrics.routes_loaded, table)


async def reload_on(requested: asyncio.Event, state: ProxyState) -> None:
    """Reload each time `requested` is set (the SIGHUP handler sets it); runs until cancelled.

    Signals arriving during a reload are answered by one more reload once it is done.
    """
    while True:
        await requested.wait()
        requested.clear()
        try:
            await reload_now(state)
        except Exception:
            log.exception("routes reload failed")


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
            await reload_now(state)
            if ready is not None:
                ready.set()
            while True:
                await pending
                await reload_now(state)
                chain = resolution_chain(state.settings.routes)
                if watched_directories(chain) != directories:
                    break
                pending = asyncio.ensure_future(anext(changes))
        finally:
            stop.set()
            with suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
            await changes.aclose()
