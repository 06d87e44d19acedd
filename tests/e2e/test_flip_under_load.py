"""The instant rollback, end to end: the real stack, bookings flipped from legacy to DRF and
back 20 times while concurrent clients keep calling. No request may fail, and every response
must come from the backend the table named while the request was in flight.

Which gateway served a request is read from the gateways' own access logs (each logs the
request's X-Request-ID), so the check does not trust the proxy's word for it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support import HEADERS, ROOT, World, make_world

TOKEN = "e2e-admin-token"
FLIP_ROUND_TRIPS = 20
CLIENTS = 8
# Calls sent and answered between two flips, at least: 20 windows a side, so well over the
# 100 the test asks of each.
WINDOW_CALLS = 12
pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Call:
    request_id: str
    path: str
    sent: float
    received: float
    status: int


@dataclass(frozen=True)
class Flip:
    backend: str
    started: float
    applied: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Path]]:
    data = tmp_path_factory.mktemp("e2e")
    routes = data / "config" / "routes.yaml"
    routes.parent.mkdir()
    shutil.copy(ROOT / "routes.yaml", routes)
    with make_world(data) as world:
        world.start_legacy()
        world.start_drf()
        world.start_proxy(routes, {"STRANGLER_ADMIN_TOKEN": TOKEN})
        yield world, routes


async def call(session: aiohttp.ClientSession, base: str, path: str) -> Call:
    request_id = uuid.uuid4().hex
    sent = time.monotonic()
    async with session.get(f"{base}{path}", headers={**HEADERS, "X-Request-ID": request_id}) as r:
        await r.read()
        return Call(request_id, path, sent, time.monotonic(), r.status)


async def client(base: str, n: int, stop: asyncio.Event, calls: list[Call]) -> None:
    paths = [f"/bookings/{1 + (n * 7 + i) % 200}" for i in range(25)] + ["/customers/3"]
    async with aiohttp.ClientSession() as session:
        i = 0
        while not stop.is_set():
            calls.append(await call(session, base, paths[i % len(paths)]))
            i += 1


async def flip(session: aiohttp.ClientSession, admin: str, backend: str) -> Flip:
    started = time.monotonic()
    async with session.put(
        f"{admin}/-/routes/bookings",
        json={"backend": backend, "reason": "e2e flip under load"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as r:
        assert r.status == 200, await r.text()
    return Flip(backend, started, time.monotonic())


async def settle(calls: list[Call], since: float) -> None:
    """Wait at least 0.1 s, and until WINDOW_CALLS calls sent after `since` (the last flip
    applied) have come back: each table gets calls that fall cleanly on its side, however slow
    the machine (bounded: after 10 s the test's counts tell)."""
    await asyncio.sleep(0.1)
    deadline = time.monotonic() + 10
    while sum(c.sent > since for c in calls) < WINDOW_CALLS and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def run_load(world: World) -> tuple[list[Call], list[Flip]]:
    base, admin = world.url("proxy"), world.url("proxy_admin")
    calls: list[Call] = []
    flips: list[Flip] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(client(base, n, stop, calls)) for n in range(CLIENTS)]
    async with aiohttp.ClientSession() as session:
        for _ in range(FLIP_ROUND_TRIPS):
            for backend in ("drf", "legacy"):
                await settle(calls, flips[-1].applied if flips else 0.0)
                flips.append(await flip(session, admin, backend))
        await settle(calls, flips[-1].applied)
    stop.set()
    await asyncio.gather(*clients)
    return calls, flips


def served_by(world: World) -> dict[str, str]:
    """request id -> the gateway whose access log has it."""
    found: dict[str, str] = {}
    for gateway in ("legacy", "drf"):
        for request_id in set(re.findall(r"request_id=([0-9a-f]{32})", world.log(gateway))):
            assert request_id not in found, f"{request_id} reached both gateways"
            found[request_id] = gateway
    return found


def expected_backend(call: Call, flips: list[Flip]) -> str | None:
    """The backend the table named for the whole time `call` was in flight, or None when a
    flip was under way during it (then either side is right)."""
    backend = "legacy"
    for flip in flips:
        if flip.started <= call.received and call.sent <= flip.applied:
            return None
        if flip.applied < call.sent:
            backend = flip.backend
    return backend


async def test_flipping_bookings_20_times_under_load_loses_nothing(
    stack: tuple[World, Path],
) -> None:
    world, routes = stack
    calls, flips = await run_load(world)
    await asyncio.sleep(0.3)  # let the gateways' access log lines land
    gateways = served_by(world)

    assert len(flips) == 2 * FLIP_ROUND_TRIPS
    assert [c for c in calls if c.status != 200] == []
    assert all(c.request_id in gateways for c in calls)

    checked = {"legacy": 0, "drf": 0}
    for c in calls:
        if c.path == "/customers/3":
            assert gateways[c.request_id] == "legacy"
            continue
        expected = expected_backend(c, flips)
        if expected is not None:
            assert gateways[c.request_id] == expected, c
            checked[expected] += 1
    # The check has teeth only if many calls fell cleanly on each side of the flips.
    assert checked["legacy"] >= 100 and checked["drf"] >= 100, checked
    assert "bookings: legacy" in routes.read_text()


def test_every_flip_is_in_the_audit_log(stack: tuple[World, Path]) -> None:
    _, routes = stack
    audit = (routes.parent / "routes.audit.jsonl").read_text().splitlines()
    assert len(audit) == 2 * FLIP_ROUND_TRIPS
    assert all('"resource": "bookings"' in line for line in audit)
