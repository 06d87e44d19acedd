"""proxy.control.fleet with a real etcd and real replica processes: a flip reaches the fleet.

Three replicas watch one store. Flips go through the admin API of each replica in turn (one
compare-and-swap of the store each) while clients call every replica; every answer must come
from the backend the table named while the request was in flight, and every replica must apply
each flip within PROPAGATION seconds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from proxy import cli
from tests.support.fleet import (
    AUTH,
    Replica,
    audit,
    fake_backends,
    flip,
    get_json,
    metric,
    push,
    put_raw,
    ready,
    replicas,
    store_block,
    table_text,
    wait_for,
)

PROPAGATION = 2.0  # seconds: generous; `python -m bench fleet` measures the real figure
FLIPS = 20
CLIENTS_PER_REPLICA = 2


@dataclass
class Fleet:
    url: str
    backends: dict[str, str]
    replicas: list[Replica]
    session: aiohttp.ClientSession
    text: str


@pytest.fixture
async def fleet(etcd_url: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fake_backends("legacy", "drf") as backends:
        text = table_text(backends, {"bookings": "legacy", "customers": "legacy"})
        await push(etcd_url, text)
        with replicas(tmp_path) as started:
            fleet = [started.start(etcd_url, f"r{i}") for i in range(3)]
            async with aiohttp.ClientSession() as session:
                for replica in fleet:
                    await ready(session, replica)
                yield Fleet(etcd_url, backends, fleet, session, text)


@dataclass(frozen=True)
class Call:
    sent: float
    received: float
    status: int
    backend: str | None


@dataclass(frozen=True)
class Flip:
    backend: str
    started: float
    applied: float  # every replica routes the new way


async def client(
    session: aiohttp.ClientSession, replica: Replica, stop: asyncio.Event, calls: list[Call]
) -> None:
    while not stop.is_set():
        sent = time.monotonic()
        async with session.get(f"{replica.url}/bookings/7") as response:
            body = await response.json() if response.status == 200 else {}
            calls.append(Call(sent, time.monotonic(), response.status, body.get("backend")))


async def applied_everywhere(fleet: Fleet, revision: int) -> bool:
    blocks = [await store_block(fleet.session, replica) for replica in fleet.replicas]
    return all(block["revision"] >= revision for block in blocks)


def expected_backend(call: Call, flips: list[Flip]) -> str | None:
    """The backend named for the whole time `call` was in flight (None: a flip was under way)."""
    backend = "legacy"
    for done in flips:
        if done.started <= call.received and call.sent <= done.applied:
            return None
        if done.applied < call.sent:
            backend = done.backend
    return backend


async def test_twenty_flips_under_load_reach_every_replica_and_lose_nothing(fleet: Fleet) -> None:
    calls: list[Call] = []
    flips: list[Flip] = []
    delays: list[float] = []
    stop = asyncio.Event()
    clients = [
        asyncio.create_task(client(fleet.session, replica, stop, calls))
        for replica in fleet.replicas
        for _ in range(CLIENTS_PER_REPLICA)
    ]
    for n in range(FLIPS):
        backend = "drf" if n % 2 == 0 else "legacy"
        await asyncio.sleep(0.1)
        started = time.monotonic()
        answer = await flip(fleet.session, fleet.replicas[n % 3], "bookings", backend)
        assert (answer["from"], answer["to"], answer["changed"]) == (
            "legacy" if backend == "drf" else "drf",
            backend,
            True,
        )
        returned = time.monotonic()
        await wait_for(
            lambda revision=answer["revision"]: applied_everywhere(fleet, revision),
            PROPAGATION,
            f"flip {n} on every replica",
            every=0.005,
        )
        delays.append(time.monotonic() - returned)
        flips.append(Flip(backend, started, time.monotonic()))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*clients)

    assert [call for call in calls if call.status != 200] == []
    checked = {"legacy": 0, "drf": 0}
    for call in calls:
        expected = expected_backend(call, flips)
        if expected is not None:
            assert call.backend == expected, call
            checked[expected] += 1
    assert checked["legacy"] >= 50 and checked["drf"] >= 50, checked
    print(
        f"\npropagation to 3 replicas after the flip returned: median "
        f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    entries = [entry for entry in await audit(fleet.url) if entry.get("action") == "flip"]
    assert [(entry["resource"], entry["to"], entry["user"]) for entry in entries] == [
        ("bookings", "drf" if n % 2 == 0 else "legacy", "admin") for n in range(FLIPS)
    ]


async def test_the_fleet_the_audit_and_a_rollback_through_the_store(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    session, first, second = fleet.session, fleet.replicas[0], fleet.replicas[1]
    done = await flip(session, first, "customers", "drf")
    async with session.post(
        f"{second.admin_url}/-/routes/customers/rollback", json={"reason": "oops"}, headers=AUTH
    ) as response:
        body = await response.json()
        assert response.status == 200, body
    assert (body["from"], body["to"], body["action"]) == ("drf", "legacy", "rollback")
    assert body["revision"] > done["revision"]
    await wait_for(lambda: applied_everywhere(fleet, body["revision"]), PROPAGATION, "rollback")

    for replica in fleet.replicas:  # every replica reads the one audit log, newest first
        latest = (await get_json(session, f"{replica.admin_url}/-/audit?limit=2"))["entries"]
        assert [(e["action"], e["to"], e["revision"]) for e in latest] == [
            ("rollback", "legacy", body["revision"]),
            ("flip", "drf", done["revision"]),
        ]
        block = await store_block(session, replica)
        assert (block["source"], block["revision"], block["up"]) == (
            "store",
            body["revision"],
            True,
        )
        assert block["body"]["resources"]["customers"]["backend"] == "legacy"

    async def listed() -> bool:
        rows = (await get_json(session, f"{first.admin_url}/-/fleet"))["replicas"]
        return [(row["id"], row["revision"]) for row in rows] == [
            (f"r{i}", body["revision"]) for i in range(3)
        ]

    await wait_for(listed, 3, "every replica registered with the latest revision")
    answer = await get_json(session, f"{first.admin_url}/-/fleet")
    assert answer["revision"] == body["revision"] and answer["lagging"] == []
    sha = (await store_block(session, fleet.replicas[2]))["body"]["sha256"]
    assert {row["sha256"] for row in answer["replicas"]} == {sha}

    code = await asyncio.to_thread(cli.main, ["status", "--fleet", "--admin", second.admin_url])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        out.splitlines()[0]
        == f"table revision: {body['revision']} (store at {answer['store_revision']})"
    )
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["r0", "r1", "r2"]
    assert all(line.split()[-1] == "ok" for line in out.splitlines()[2:])
    assert await metric(session, first, "strangler_table_revision") == body["revision"]
    assert await metric(session, first, "strangler_store_up") == 1


async def test_invalid_text_in_the_key_is_rejected_by_every_replica(fleet: Fleet) -> None:
    session = fleet.session
    before = [await store_block(session, replica) for replica in fleet.replicas]
    reloads = "strangler_config_reloads_total"
    failures = [await metric(session, r, reloads, result="failure") for r in fleet.replicas]
    await put_raw(fleet.url, fleet.text.replace("default: legacy", "default: nowhere"))

    async def reported() -> bool:
        blocks = [await store_block(session, replica) for replica in fleet.replicas]
        return all(block["last_reload_error"] for block in blocks)

    await wait_for(reported, PROPAGATION, "every replica reports the invalid table")
    for replica, old in zip(fleet.replicas, before, strict=True):
        block = await store_block(session, replica)
        prefix = "/" + fleet.url.rsplit("/", 1)[1]
        assert block["last_reload_error"].startswith(f"{prefix}/routes:")
        assert "nowhere" in block["last_reload_error"]
        assert block["revision"] == old["revision"]  # the last good table keeps serving
        assert block["body"]["sha256"] == old["body"]["sha256"]
        async with session.get(f"{replica.url}/bookings/1") as response:
            assert response.status == 200
            assert (await response.json())["backend"] == "legacy"
    failed = [await metric(session, r, reloads, result="failure") for r in fleet.replicas]
    assert failed == [count + 1 for count in failures]
    # A valid table after it is applied and clears the error.
    revision = await push(fleet.url, fleet.text.replace("bookings: legacy", "bookings: drf"))
    await wait_for(lambda: applied_everywhere(fleet, revision), PROPAGATION, "the fixed table")
    for replica in fleet.replicas:
        assert (await store_block(session, replica))["last_reload_error"] is None


GUARDED = """\
  orders:
    backend: legacy
    guard: {max_error_rate: 0.05, min_requests: 10, window: 5}
"""


async def test_a_guard_tripping_on_three_replicas_at_once_rolls_back_once(fleet: Fleet) -> None:
    session = fleet.session
    revision = await push(fleet.url, fleet.text + GUARDED)
    await wait_for(lambda: applied_everywhere(fleet, revision), PROPAGATION, "the guarded table")
    done = await flip(session, fleet.replicas[0], "orders", "drf")
    await wait_for(lambda: applied_everywhere(fleet, done["revision"]), PROPAGATION, "the flip")

    async def armed() -> bool:
        for replica in fleet.replicas:
            stats = await get_json(session, f"{replica.admin_url}/-/stats")
            guard = next(r for r in stats["resources"] if r["resource"] == "orders")["guard"]
            if guard["state"] != "armed":
                return False
        return True

    await wait_for(armed, 5, "the guard armed on every replica")
    # Just after one of the guards' shared evaluation instants (every 0.5 s of the wall clock),
    # so that each replica has its failures counted before the next one: all trip at once.
    await asyncio.sleep(0.5 - time.time() % 0.5 + 0.02)

    async def fail(replica: Replica) -> None:
        for _ in range(12):
            async with session.get(f"{replica.url}/orders/1/fail") as response:
                assert response.status == 503

    await asyncio.gather(*(fail(replica) for replica in fleet.replicas))

    async def rolled_back() -> bool:
        blocks = [await store_block(session, replica) for replica in fleet.replicas]
        return all(b["body"]["resources"]["orders"]["backend"] == "legacy" for b in blocks)

    await wait_for(rolled_back, 5, "orders back on legacy everywhere")
    await asyncio.sleep(1.0)  # any second rollback would have been written by now
    entries = [e for e in await audit(fleet.url) if e.get("resource") == "orders"]
    assert [(e["action"], e["user"], e["from"], e["to"]) for e in entries] == [
        ("flip", "admin", "legacy", "drf"),
        ("rollback", "guard", "drf", "legacy"),
    ]
    counted = [
        await metric(session, r, "strangler_guard_rollbacks_total", resource="orders")
        for r in fleet.replicas
    ]
    assert sum(counted) == 1, counted
    logs = "".join(replica.log.read_text() for replica in fleet.replicas)
    assert logs.count("guard: rolled orders back from drf to legacy") == 1
    assert logs.count("rolling orders back from drf") == 3  # all three tripped at once


async def test_each_worker_of_a_replica_follows_the_store(etcd_url: str, tmp_path: Path) -> None:
    async with fake_backends("legacy", "drf") as backends:
        await push(etcd_url, table_text(backends, {"bookings": "legacy"}))
        with replicas(tmp_path) as started:
            replica = started.start(etcd_url, "multi", workers=2)
            async with aiohttp.ClientSession() as session:
                await ready(session, replica)

                async def workers_at(revision: int | None) -> bool:
                    rows = (await get_json(session, f"{replica.admin_url}/-/fleet"))["replicas"]
                    ids = {row["id"].split(".")[0] for row in rows}
                    current = revision is None or all(row["revision"] == revision for row in rows)
                    return len(rows) == 2 and ids == {"multi"} and current

                await wait_for(lambda: workers_at(None), 5, "both workers registered")
                done = await flip(session, replica, "bookings", "drf")
                await wait_for(lambda: workers_at(done["revision"]), PROPAGATION, "both applied")
                for _ in range(10):  # whichever worker accepts the connection
                    async with session.get(f"{replica.url}/bookings/1") as response:
                        assert (await response.json())["backend"] == "drf"
