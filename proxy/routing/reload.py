"""Reload routes.yaml: on SIGHUP (`reload_on`), on changes seen by a directory watcher
(`watch_routes`), and after an admin flip or a guard rollback (`reload_now`).

A reload works on a `ReloadTarget` (the process state is one): it reads where the file is and
its size cap, and hands the outcome back through the target's callbacks, which put a new table
in force in one assignment, record a failure and publish the table's description (the metrics
are theirs; this module knows nothing of them). `Tickets` keep overlapping reloads in order.

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
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from watchfiles import Change, awatch

from proxy.routing.model import RoutesError, RouteTable
from proxy.routing.parser import load_table

log = logging.getLogger(__name__)

DEBOUNCE_MS = 50
# How often watchfiles' thread looks for changes (and takes the GIL to check its stop event): a
# flip's file write is served within about the debounce. At 50 ms the event loop's thread hands
# the GIL over less often (300 futex calls in 3 s of `wrk` instead of 2,400; 6.7 ms of CPU a
# second when idle instead of 13.3), but a request sent right after `strangler flip` returns
# can still reach the old backend (the README's quick start does exactly that), and `bench
# proxy` showed no difference.
STEP_MS = 5
MAX_LINKS = 40


@dataclass
class Tickets:
    """The order of one process's reloads, which may overlap (watcher, SIGHUP, admin flip, guard
    rollback): one ticket per reload, and one publisher of a table's description at a time."""

    started: int = 0  # tickets handed out, one per reload
    reported: int = 0  # the ticket of the latest reload whose outcome was applied
    publishing: asyncio.Lock = field(default_factory=asyncio.Lock)


class RoutesFile(Protocol):
    """Where the routes file is and how big it may be (`proxy.settings.Settings` is one)."""

    @property
    def routes(self) -> Path: ...

    @property
    def max_routes_bytes(self) -> int: ...


class ReloadTarget(Protocol):
    """What a reload reads and where its outcome goes (`proxy.state.ProxyState` is one).

    `settings` is read as each reload starts: a changed path or cap applies to the next one.
    """

    @property
    def settings(self) -> RoutesFile: ...

    @property
    def table(self) -> RouteTable: ...  # the table in force

    @property
    def last_reload_error(self) -> str | None: ...

    @property
    def reloads(self) -> Tickets: ...

    def swap_table(self, table: RouteTable) -> None:
        """Put `table` in force (one assignment), clear the last error, count a success."""

    def reload_failed(self, error: str) -> None:
        """Keep the table in force; record `error` (its `file:line: message` lines), count it."""

    def publish_routes(self, table: RouteTable) -> None:
        """Describe `table` wherever tables are described; blocking, so called in a thread."""


async def reload_now(target: ReloadTarget) -> bool:
    """Load the routes file in a thread; swap the target's table in one assignment if it is valid
    and new. Returns whether the file this reload read was valid.

    Reloads may overlap (watcher, SIGHUP, admin flip, guard rollback). Each takes a ticket as it
    starts; an outcome is applied only when no reload started later has reported yet, so an older
    parse never replaces a newer one (nor an older error a newer table).

    An invalid, missing or oversized file keeps the table in force, logs every
    `file:line: message` and hands them to `target.reload_failed`.
    """
    tickets = target.reloads
    tickets.started += 1
    ticket = tickets.started
    settings = target.settings
    try:
        table = await asyncio.to_thread(
            load_table, settings.routes, None, settings.max_routes_bytes
        )
    except RoutesError as exc:
        if _newest(tickets, ticket):
            _failed(target, exc)
        return False
    if not _newest(tickets, ticket):
        return True
    if table.sha256 == target.table.sha256 and target.last_reload_error is None:
        return True
    target.swap_table(table)
    log.info("routes reloaded from %s (sha256 %s)", table.source, table.sha256[:12])
    await _publish_routes(target, table)
    return True


def _newest(tickets: Tickets, ticket: int) -> bool:
    """Whether reload `ticket` is the latest to report; if so, it now is the one reported."""
    if ticket < tickets.reported:
        log.info("routes reload %d superseded by reload %d", ticket, tickets.reported)
        return False
    tickets.reported = ticket
    return True


def _failed(target: ReloadTarget, error: RoutesError) -> None:
    for line in error.errors:
        log.error("routes reload failed: %s", line)
    target.reload_failed("\n".join(error.errors))


async def _publish_routes(target: ReloadTarget, table: RouteTable) -> None:
    """The description of `table` (strangler_route_info: one series per route, 60,000 take
    seconds), made in a thread, one table at a time and in the order the tables were swapped in."""
    async with target.reloads.publishing:
        if target.table is table:  # else a newer table was swapped in and publishes itself
            await asyncio.to_thread(target.publish_routes, table)


async def reload_on(requested: asyncio.Event, target: ReloadTarget) -> None:
    """Reload each time `requested` is set (the SIGHUP handler sets it); runs until cancelled.

    Signals arriving during a reload are answered by one more reload once it is done.
    """
    while True:
        await requested.wait()
        requested.clear()
        try:
            await reload_now(target)
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
    target: ReloadTarget,
    *,
    ready: asyncio.Event | None = None,
    debounce_ms: int = DEBOUNCE_MS,
    step_ms: int = STEP_MS,
) -> None:
    """Reload whenever the routes file may have changed; runs until cancelled.

    `ready` is set once the first watch is in place (tests wait for it).
    """
    while True:
        chain = resolution_chain(target.settings.routes)
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
            await reload_now(target)
            if ready is not None:
                ready.set()
            while True:
                await pending
                await reload_now(target)
                chain = resolution_chain(target.settings.routes)
                if watched_directories(chain) != directories:
                    break
                pending = asyncio.ensure_future(anext(changes))
        finally:
            stop.set()
            with suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
            await changes.aclose()
