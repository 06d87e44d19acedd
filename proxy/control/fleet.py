"""One replica of a fleet: the table from the store (etcd), watched, cached on disk, registered.

With `--store` a proxy takes its table from the store's routes key instead of routes.yaml:

- At start, `proxy.control.fleet_start.open_store` reads the key (or, with the store down, the
  cache on disk) for the first table.
- `Fleet.follow` watches the key. A valid new table is put in force in one swap through the same
  `ProxyState.swap_table` a file reload uses; an invalid one (or a deleted key) is logged, counted
  (`strangler_config_reloads_total{result="failure"}`) and shown in `/-/routes`, and the last
  good table keeps serving. When the watch breaks (store killed, frozen, partitioned) the replica
  keeps serving, `strangler_store_up` drops to 0, and it reconnects with backoff; every
  reconnection reads the key first, so changes made meanwhile are caught up.
- `Fleet.keep_registered` registers the replica under a lease (`LEASE_TTL` seconds, renewed every
  `RENEW_EVERY`): its id, the revision and sha256 it applied, when, and where the table came
  from. A frozen store is noticed by the first renewal that times out. Under the same lease the
  replica publishes its fallback debt and kept shadow mismatches (`share`), which the admin
  endpoints of any replica merge (`proxy.control.fleet_admin`).

With `--workers N` each worker is a replica of its own (`<replica id>.<pid>`), with its own watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from proxy.clock import iso_time
from proxy.control.fleet_start import (
    SOURCE_STORE,
    Start,
    parse_text,
    table_source,
    write_cache,
)
from proxy.observe.sharing import DEBT, MISMATCHES, NOISE, SHARE_SECONDS
from proxy.routing import edit, store_edit
from proxy.routing.model import RoutesError, RouteTable
from proxy.routing.store import Replica, RouteStore, StoreError, TableText
from proxy.settings import Settings
from proxy.state import ProxyState
from proxy.tasks import Tasks

log = logging.getLogger("strangler.fleet")

LEASE_TTL = 5  # seconds a replica stays listed after its last renewal
RENEW_EVERY = 1.0  # a frozen store is noticed within this plus the store timeout
RECONNECT_FIRST = 0.1  # seconds before the first reconnection; doubled up to RECONNECT_MAX
RECONNECT_MAX = 1.0
LEAVE_TIMEOUT = 0.5  # seconds a stopping replica waits for the store to drop its lease


def store_tasks(tasks: Tasks, fleet: Fleet, hangup: asyncio.Event) -> None:
    """Start what a replica runs for its lifetime: the watch, the lease, SIGHUP's re-read."""
    tasks.start(fleet.follow(), "store watch")
    tasks.start(fleet.keep_registered(), "store lease")
    tasks.start(fleet.refresh_on(hangup), "SIGHUP store read")


def replica_id(settings: Settings) -> str:
    """The id this process registers under: a worker of several adds its pid."""
    base: str = settings.replica_id
    return base if settings.shared_directory is None else f"{base}.{os.getpid()}"


@dataclass
class Fleet:
    """This replica's link to the store: what it applied, whether the store answers."""

    state: ProxyState
    start: Start
    id: str
    revision: int = 0  # mod_revision of the routes key whose table is in force
    seen: int = 0  # the latest revision looked at (applied or rejected)
    source: str = SOURCE_STORE
    applied_at: str = ""
    watching: bool = False  # the watch is connected
    leased: bool = False  # the lease was renewed on the last try
    lease: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)  # register again now
    _applying: asyncio.Lock = field(default_factory=asyncio.Lock)
    _shared: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, state: ProxyState, start: Start) -> Fleet:
        fleet = cls(state, start, replica_id(state.settings), start.revision, start.revision)
        fleet.source = start.source
        fleet.applied_at = iso_time(state.loaded_at)
        if start.cache_error is not None:
            state.last_reload_error = start.cache_error
        state.metrics.table_revision(fleet.revision)
        state.metrics.store_up(False)
        return fleet

    @property
    def store(self) -> RouteStore:
        return self.start.store

    @property
    def up(self) -> bool:
        return self.watching and self.leased

    def describe(self) -> dict[str, Any]:
        """The `store` block of /-/routes."""
        cache = self.state.settings.store_cache
        return {
            "url": self.state.settings.store,
            "source": self.source,
            "revision": self.revision,
            "up": self.up,
            "replica": self.id,
            "cache": None if cache is None else str(cache),
        }

    def replica(self) -> Replica:
        table = self.state.table
        return Replica(
            id=self.id,
            revision=self.revision,
            sha256=table.sha256,
            applied_at=self.applied_at,
            source=self.source,
            pid=os.getpid(),
            host=socket.gethostname(),
        )

    def _set(self, *, watching: bool | None = None, leased: bool | None = None) -> None:
        was = self.up
        self.watching = self.watching if watching is None else watching
        self.leased = self.leased if leased is None else leased
        if self.up != was:
            log.warning("the store is %s", "reachable again" if self.up else "unreachable")
        self.state.metrics.store_up(self.up)

    # -- the table -----------------------------------------------------------------------------

    async def apply(self, latest: TableText) -> bool:
        """Put `latest` in force if it is newer than what was looked at; False if rejected."""
        async with self._applying:
            if latest.revision <= self.seen and self.source == SOURCE_STORE:
                return True
            self.seen = max(self.seen, latest.revision)
            if latest.text is None:
                self._rejected(f"{table_source(self.start.url)}: the table was deleted")
                return False
            try:
                table = await asyncio.to_thread(
                    parse_text,
                    latest.text,
                    table_source(self.start.url),
                    self.state.settings.max_routes_bytes,
                )
            except RoutesError as exc:
                self._rejected("\n".join(exc.errors))
                return False
            await self._swap(table, latest)
            return True

    def _rejected(self, error: str) -> None:
        for line in error.splitlines():
            log.error("table from the store rejected: %s", line)
        self.state.reload_failed(error)

    async def _swap(self, table: RouteTable, latest: TableText) -> None:
        state = self.state
        same = table.sha256 == state.table.sha256 and state.last_reload_error is None
        self.revision, self.source = latest.revision, SOURCE_STORE
        if not same:
            state.swap_table(table)
            log.info("table of revision %d applied (sha256 %s)", latest.revision, table.sha256[:12])
        self.applied_at = iso_time(state.loaded_at)
        state.metrics.table_revision(latest.revision)
        self._changed.set()
        assert latest.text is not None
        await asyncio.to_thread(write_cache, state.settings.store_cache, latest.text)
        if not same:
            async with state.reloads.publishing:
                if state.table is table:
                    await asyncio.to_thread(state.publish_routes, table)

    async def refresh(self) -> None:
        """Read the key once and apply it (SIGHUP, after a guard's rollback)."""
        try:
            await self.apply(await self.store.read())
        except StoreError as exc:
            log.warning("cannot read the store: %s", exc)

    async def refresh_on(self, requested: asyncio.Event) -> None:
        """`refresh` each time `requested` is set (the SIGHUP handler sets it); until cancelled."""
        while True:
            await requested.wait()
            requested.clear()
            await self.refresh()

    # -- writes --------------------------------------------------------------------------------

    async def written(self, change: edit.Change | None) -> edit.Change | None:
        """After a write through the store (`proxy.routing.store_edit`): apply it here at once
        (the other replicas get it from their watch)."""
        if change is not None and change.recorded:
            await self.refresh()
        return change

    async def audit(self) -> list[dict[str, Any]]:
        """The store's audit log, oldest first (the guard re-arms from it)."""
        return await self.store.audit()

    async def rollback_if(
        self, resource: str, expected: str, *, user: str, reason: str
    ) -> edit.Change | None:
        """The guard's rollback: only if `resource` is still on `expected` (one CAS)."""
        by = store_edit.author(self.store, user, reason)
        return await self.written(await store_edit.rollback_if(self.store, resource, expected, by))

    async def stop_canary_if(
        self, resource: str, expected: str, main: str, *, user: str, reason: str
    ) -> edit.Change | None:
        """The guard's canary stop: only if the canary and backend are as it saw them (one CAS)."""
        by = store_edit.author(self.store, user, reason)
        change = await store_edit.stop_canary_if(self.store, resource, expected, main, by)
        return await self.written(change)

    async def follow(self) -> None:
        """Watch the routes key until cancelled; reconnect with backoff, catching up first."""
        delay = RECONNECT_FIRST
        while True:
            try:
                latest = await self.store.read()
                self._set(watching=True)
                delay = RECONNECT_FIRST
                await self.apply(latest)
                async for change in self.store.watch(latest.store_revision):
                    await self.apply(change)
            except StoreError as exc:
                if self.watching:
                    log.warning("store watch lost: %s", exc)
                self._set(watching=False)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RECONNECT_MAX)

    # -- the lease -----------------------------------------------------------------------------

    async def keep_registered(self) -> None:
        """Register, renew the lease, publish changed snapshots; until cancelled."""
        since_share = 0.0
        while True:
            try:
                await self._renew()
                since_share += RENEW_EVERY
                if since_share >= SHARE_SECONDS:
                    since_share = 0.0
                    await self._share(force=False)
                self._set(leased=True)
            except StoreError as exc:
                if self.leased:
                    log.warning("store lease not renewed: %s", exc)
                self._set(leased=False)
                self.lease = None
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RENEW_EVERY)

    async def _renew(self) -> None:
        """Renew the lease (register anew when it is gone); publish what changed."""
        if self.lease is not None and not await self.store.keep_alive(self.lease):
            log.warning("lease %x expired; registering again", self.lease)
            self.lease = None
        changed = self._changed.is_set()
        self._changed.clear()
        if self.lease is None:
            self.lease = await self.store.register(self.replica(), LEASE_TTL)
            await self._share(force=True)
        elif changed:
            await self.store.update(self.replica(), self.lease)

    def snapshots(self) -> dict[str, bytes]:
        shadows = self.state.shadows
        mismatches = {} if shadows is None else shadows.snapshot()
        noise = {} if shadows is None else shadows.noise.snapshot()
        return {
            DEBT: json.dumps(self.state.debt.snapshot()).encode(),
            MISMATCHES: json.dumps(mismatches).encode(),
            NOISE: json.dumps(noise).encode(),
        }

    async def _share(self, *, force: bool) -> None:
        """Publish this replica's snapshots under its lease (only the changed ones unless
        `force`: a new lease)."""
        if self.lease is None:
            return
        for name, value in self.snapshots().items():
            if force or self._shared.get(name) != value:
                await self.store.share(self.id, name, value, self.lease)
                self._shared[name] = value

    async def publish(self, name: str, value: bytes) -> None:
        """Share `value` under `name` now, under this replica's lease (none yet: nothing)."""
        if self.lease is not None:
            await self.store.share(self.id, name, value, self.lease)

    async def shared_by_replica(self, name: str) -> dict[str, bytes]:
        """Every other live replica's value under `name`, by replica id."""
        values = await self.store.shared(name)
        return {replica: value for replica, value in values.items() if replica != self.id}

    async def shared(self, name: str) -> list[Any]:
        """The other live replicas' snapshots of `name` (this one's is read live)."""
        found = []
        for replica, value in sorted((await self.store.shared(name)).items()):
            if replica == self.id:
                continue
            try:
                found.append(json.loads(value))
            except ValueError:
                log.warning("skipping the unreadable %s snapshot of replica %s", name, replica)
        return found

    async def close(self) -> None:
        """Leave the fleet at once (revoke the lease, if the store answers soon), then close."""
        if self.lease is not None:
            with suppress(StoreError, TimeoutError):
                await asyncio.wait_for(self.store.revoke(self.lease), LEAVE_TIMEOUT)
        await self.store.close()
