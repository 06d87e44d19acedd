"""Writes shadowed as dry runs, end to end on the real stack: source systems, both gateways under
gunicorn, the proxy as a process, all sharing one dry-run secret.

1. The case this project comes from: with `bookings` on legacy and its writes shadowed to DRF, a
   client's `POST /bookings/resource` succeeds on legacy, and `/-/diffs` shows a `status`
   mismatch (201 vs 404) for that shape before any flip.
2. Nothing is stored twice: after 1,000 shadowed writes of every method (POST, PUT, PATCH, and
   DELETE, which both gateways refuse), the source systems' tables are byte-identical (row counts
   and a SHA-256 of every table) to those of a second world that got the same writes, in the same
   order for each record, from legacy alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stack.services import SOURCE_SYSTEMS
from tests.support import HEADERS, World, make_world

pytestmark = pytest.mark.e2e

SECRET = "e2e-dry-run-secret"
# Both worlds' gateways stamp new records with this time: the same writes, the same bytes.
PINNED = {"STRANGLER_DEMO_NOW": "2026-11-28T10:00:00Z"}
PER_METHOD = 1000
BOOKING = {
    "customer_id": 7,
    "departure_id": 8,
    "travellers": 3,
    "currency": "AUD",
    "total_amount": "999.9",
    "contact_email": "writes@example.com",
}
CUSTOMER = {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("e2e-writes"), shadow_secret=SECRET) as started:
        started.start_legacy(PINNED)
        started.start_drf(PINNED)
        yield started


@pytest.fixture
def plain_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same world without the proxy: what the live writes alone produce."""
    with make_world(tmp_path_factory.mktemp("e2e-plain"), shadow_secret=SECRET) as started:
        started.start_legacy(PINNED)
        yield started


def routes_text(world: World) -> str:
    shadow = "shadow: {backend: drf, percent: 100, writes: dry-run}"
    return (
        "version: 1\nbackends:\n"
        f"  legacy: {{url: {world.url('legacy')}}}\n  drf: {{url: {world.url('drf')}}}\n"
        "default: legacy\nresources:\n"
        f"  bookings: {{backend: legacy, {shadow}}}\n"
        f"  customers: {{backend: legacy, {shadow}}}\n"
    )


Write = tuple[str, str, dict[str, Any]]


def writes() -> dict[str, list[Write]]:
    """PER_METHOD writes of each method, valid and invalid ones mixed, in streams that touch
    disjoint records: each stream in a fixed order, so the streams may run at once and the
    stored result is still the same every time (new ids are handed out per table, in the order
    of its own POSTs; PUT and PATCH touch seeded records only)."""
    streams: dict[str, list[Write]] = {
        "post bookings": [],
        "post customers": [],
        "put bookings": [],
        "patch customers": [],
        "delete bookings": [],
    }
    for n in range(PER_METHOD):
        invalid = n % 10 in (8, 9)  # 100 invalid POSTs of each resource
        if n % 2:
            body = {**CUSTOMER, "first_name": f"Grace {n}"}
            streams["post customers"].append(("POST", "/customers", {} if invalid else body))
        else:
            booking = {**BOOKING, "travellers": 0 if invalid else 1 + n % 20}
            streams["post bookings"].append(("POST", "/bookings", booking))
        put = {**BOOKING, "travellers": 1 + n % 7}
        streams["put bookings"].append(("PUT", f"/bookings/{1 + n % 40}", put))
        patch = {"last_name": f"H{n}"}
        streams["patch customers"].append(("PATCH", f"/customers/{1 + n % 30}", patch))
        streams["delete bookings"].append(("DELETE", f"/bookings/{1 + n % 40}", {}))
    return streams


# The proxy's shadow queue holds 256 copies and drops what does not fit, by design; this test
# counts every copy compared, so the writes through the proxy never leave more than this many
# copies waiting to be compared.
BACKLOG = 128


class Backlog:
    """The shadow copies of the writes sent through the proxy that are not compared yet.

    `room()` before each write waits while `BACKLOG` of them are (asking the proxy's /-/diffs
    how many were compared), then counts the write: however slow the shadow backend is on a busy
    machine, the queue never holds more than `BACKLOG` copies, so none is dropped.
    """

    def __init__(self, session: aiohttp.ClientSession, admin: str) -> None:
        self.session = session
        self.admin = admin
        self.sent = 0
        self.done = 0
        self.asking = asyncio.Lock()

    async def room(self) -> None:
        while self.sent - self.done >= BACKLOG:
            async with self.asking:
                if self.sent - self.done < BACKLOG:
                    break
                summary = (await get_json(self.session, f"{self.admin}/-/diffs"))["resources"]
                self.done = done_of(summary, ("bookings", "customers"))
                if self.sent - self.done >= BACKLOG:
                    await asyncio.sleep(0.05)
        self.sent += 1


async def send_all(base: str, admin: str | None = None) -> dict[int, int]:
    """Every write, the streams at once, each stream in its order on a keep-alive connection of
    its own; statuses counted. With `admin` (the proxy's), each write waits for room in the
    proxy's shadow queue first (`Backlog`)."""
    statuses: dict[int, int] = {}

    async def stream(writes: list[Write], backlog: Backlog | None) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for method, path, body in writes:
                if backlog is not None:
                    await backlog.room()
                async with session.request(
                    method, base + path, data=json.dumps(body), headers={**HEADERS, **JSON_TYPE}
                ) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession() as session:
        backlog = None if admin is None else Backlog(session, admin)
        await asyncio.gather(*(stream(writes, backlog) for writes in writes().values()))
    return statuses


JSON_TYPE = {"Content-Type": "application/json"}


def tables(world: World) -> dict[str, tuple[int, str]]:
    """Every source system's tables: (row count, SHA-256 of every row in id order)."""
    found = {}
    for system in SOURCE_SYSTEMS:
        path = world.config.data_dir / f"{system}.sqlite3"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            names = [
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in sorted(names):
                digest = hashlib.sha256()
                rows = conn.execute(f"SELECT id, data FROM {name} ORDER BY id").fetchall()
                for record_id, data in rows:
                    digest.update(f"{record_id}\t{data}\n".encode())
                found[f"{system}.{name}"] = (len(rows), digest.hexdigest())
    return found


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def done_of(summary: dict[str, Any], resources: tuple[str, ...]) -> float:
    """How many copies of `resources` a /-/diffs summary says were compared (or dropped)."""
    return sum(
        summary[name][key]
        for name in resources
        if name in summary
        for key in ("match", "mismatch", "noise", "error", "dropped")
    )


async def compared(admin: str, resources: tuple[str, ...], expected: int) -> dict[str, Any]:
    """The /-/diffs summary once `expected` copies of `resources` were compared (at most 120 s)."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while True:
            summary: dict[str, Any] = (await get_json(session, f"{admin}/-/diffs"))["resources"]
            if done_of(summary, resources) >= expected or time.monotonic() > deadline:
                return summary
            await asyncio.sleep(0.2)


async def test_post_to_resource_suffix_is_caught_as_a_status_mismatch_before_a_flip(
    world: World, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_text(world))
    base = world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
    admin = world.url("proxy_admin")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/bookings/resource", json=BOOKING, headers=HEADERS
        ) as response:
            assert response.status == 201  # the client notices nothing: legacy took it
            created = await response.json()
        await compared(admin, ("bookings",), 1)
        report = await get_json(session, f"{admin}/-/diffs?resource=bookings")
    assert (report["mismatch"], report["classes"]["status"], report["worst"]) == (1, 1, "status")
    (mismatch,) = report["mismatches"]
    assert (mismatch["method"], mismatch["path"], mismatch["class"]) == (
        "POST",
        "/bookings/resource",
        "status",
    )
    assert (mismatch["live_status"], mismatch["shadow_status"], mismatch["dry_run"]) == (
        201,
        404,
        True,
    )
    assert mismatch["differences"][0] == {
        "field": "status",
        "kind": "changed",
        "class": "status",
        "live": 201,
        "shadow": 404,
    }
    assert json.loads(mismatch["request"]["body"]) == BOOKING
    assert ["X-Application-Key", "<redacted>"] in mismatch["request"]["headers"]
    assert json.loads(mismatch["live"]["body"]) == created


async def test_dry_run_writes_store_nothing(
    world: World, plain_world: World, tmp_path: Path
) -> None:
    before = tables(world)
    assert before == tables(plain_world)  # the same seed
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_text(world))
    base = world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
    # each world gets the writes in the same order (per stream); the two worlds at once
    admin = world.url("proxy_admin")
    shadowed, live_alone = await asyncio.gather(
        send_all(base, admin), send_all(plain_world.url("legacy"))
    )
    assert shadowed == live_alone
    summary = await compared(admin, ("bookings", "customers"), 4 * PER_METHOD)
    figures = [summary[name] for name in ("bookings", "customers")]
    assert sum(f["match"] + f["mismatch"] + f["noise"] for f in figures) == 4 * PER_METHOD
    assert sum(f["error"] + f["dropped"] for f in figures) == 0
    after, plain = tables(world), tables(plain_world)
    assert after == plain
    assert after != before  # the live writes were stored
    for table in ("reservations.bookings", "reservations.customers"):  # 400 valid POSTs each
        assert after[table][0] == before[table][0] + 400, table
