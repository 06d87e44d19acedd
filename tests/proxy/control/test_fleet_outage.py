"""proxy.control.fleet when etcd goes away: killed, frozen (SIGSTOP), or down at start.

Replicas keep serving their last good table with zero failed requests, report
`strangler_store_up` 0, reconnect on their own, and a flip made after the store is back reaches
every replica. A replica started while the store is down serves its cache file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from proxy.control.fleet import LEASE_TTL
from tests.support.etcd import EtcdServer
from tests.support.fleet import (
    Replica,
    Replicas,
    fake_backends,
    flip,
    metric,
    push,
    ready,
    replicas,
    store_block,
    table_text,
    wait_for,
)

PROPAGATION = 2.0
RECONNECT = 10.0  # seconds for every replica to be back once etcd answers again


@dataclass
class Outage:
    etcd: EtcdServer
    started: Replicas
    replicas: list[Replica]
    session: aiohttp.ClientSession
    failures: list[str]
    answers: list[int]


@pytest.fixture
async def outage(etcd: EtcdServer, tmp_path: Path) -> AsyncIterator[Outage]:
    """Three replicas on their own etcd, with clients calling each until the test ends."""
    async with fake_backends("legacy", "drf") as backends:
        await push(etcd.url, table_text(backends, {"bookings": "legacy"}))
        with replicas(tmp_path) as started:
            fleet = [started.start(etcd.url, f"r{i}") for i in range(3)]
            async with aiohttp.ClientSession() as session:
                for replica in fleet:
                    await ready(session, replica)
                test = Outage(etcd, started, fleet, session, [], [])
                stop = asyncio.Event()
                clients = [
                    asyncio.create_task(client(session, replica, stop, test))
                    for replica in fleet
                    for _ in range(2)
                ]
                try:
                    yield test
                finally:
                    stop.set()
                    await asyncio.gather(*clients)


async def client(
    session: aiohttp.ClientSession, replica: Replica, stop: asyncio.Event, test: Outage
) -> None:
    while not stop.is_set():
        try:
            async with session.get(f"{replica.url}/bookings/1") as response:
                await response.read()
                test.answers.append(response.status)
                if response.status != 200:
                    test.failures.append(f"{replica.name}: {response.status}")
        except aiohttp.ClientError as exc:
            test.failures.append(f"{replica.name}: {exc!r}")
        await asyncio.sleep(0.005)


async def store_up_everywhere(test: Outage, replicas: list[Replica], up: int) -> bool:
    values = [await metric(test.session, r, "strangler_store_up") for r in replicas]
    return values == [up] * len(replicas)


async def flip_reaches(test: Outage, replicas: list[Replica], backend: str) -> None:
    done = await flip(test.session, replicas[0], "bookings", backend)

    async def applied() -> bool:
        blocks = [await store_block(test.session, replica) for replica in replicas]
        return all(block["revision"] == done["revision"] for block in blocks)

    await wait_for(applied, PROPAGATION, f"the flip to {backend} on every replica")
    for replica in replicas:
        async with test.session.get(f"{replica.url}/bookings/2") as response:
            assert (await response.json())["backend"] == backend


async def test_etcd_killed_under_load_then_restarted(outage: Outage) -> None:
    test = outage
    await asyncio.sleep(0.3)
    test.etcd.kill()
    await wait_for(
        lambda: store_up_everywhere(test, test.replicas, 0), LEASE_TTL, "store_up 0 everywhere"
    )
    # A replica started now, with the store down, serves the last table r0 cached.
    late = test.started.start(test.etcd.url, "late", cache=test.replicas[0].cache)
    await ready(test.session, late)
    block = await store_block(test.session, late)
    assert (block["source"], block["revision"], block["up"]) == ("cache", 0, False)
    assert "the store is unreachable" in block["last_reload_error"]
    async with test.session.get(f"{late.url}/bookings/3") as response:
        assert (response.status, (await response.json())["backend"]) == (200, "legacy")
    await asyncio.sleep(0.5)  # traffic while the store is down

    test.etcd.restart()
    everyone = [*test.replicas, late]
    await wait_for(lambda: store_up_everywhere(test, everyone, 1), RECONNECT, "reconnected")
    assert (await store_block(test.session, late))["source"] == "store"
    await flip_reaches(test, everyone, "drf")
    assert test.failures == []
    assert len(test.answers) > 100


async def test_etcd_frozen_is_noticed_and_survived(outage: Outage) -> None:
    test = outage
    await asyncio.sleep(0.3)
    test.etcd.stop()
    began = time.monotonic()
    try:
        noticed = await wait_for(
            lambda: store_up_everywhere(test, test.replicas, 0),
            LEASE_TTL,
            "a frozen store noticed within the lease TTL",
            every=0.05,
        )
        print(f"\nfrozen etcd noticed by every replica after {noticed:.1f} s")
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        answered = len(test.answers)
        await asyncio.sleep(0.5)
        assert len(test.answers) > answered  # still serving
    finally:
        test.etcd.cont()
    await wait_for(lambda: store_up_everywhere(test, test.replicas, 1), RECONNECT, "back")
    await flip_reaches(test, test.replicas, "drf")
    assert test.failures == []
