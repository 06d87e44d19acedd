"""A group's flip and rollback through the admin API of replicas sharing a real etcd: one
compare-and-swap each, one audit entry naming the group, every replica follows."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.support.fleet import (
    AUTH,
    audit,
    fake_backends,
    get_json,
    push,
    ready,
    replicas,
    table_text,
    wait_for,
)

GROUPS = "groups:\n  reservations: [bookings, customers]\n"


async def test_a_group_flip_and_rollback_reach_every_replica(etcd_url: str, tmp_path: Path) -> None:
    async with fake_backends("legacy", "drf") as backends:
        resources = {"bookings": "legacy", "customers": "legacy", "tours": "drf"}
        await push(etcd_url, table_text(backends, resources, GROUPS))
        with replicas(tmp_path) as started:
            fleet = [started.start(etcd_url, f"r{i}") for i in range(2)]
            async with aiohttp.ClientSession() as session:
                for replica in fleet:
                    await ready(session, replica)

                async def everywhere(backend: str) -> bool:
                    for replica in fleet:
                        body = await get_json(session, f"{replica.admin_url}/-/routes")
                        found = {
                            n: body["resources"][n]["backend"]
                            for n in body["groups"]["reservations"]
                        }
                        if found != {"bookings": backend, "customers": backend}:
                            return False
                    return True

                flip = {"group": "reservations", "backend": "drf", "reason": "go"}
                async with session.post(
                    f"{fleet[0].admin_url}/-/flip", json=flip, headers=AUTH
                ) as answer:
                    flipped = await answer.json()
                    assert answer.status == 200, flipped
                await wait_for(lambda: everywhere("drf"), 5, "the group flip on every replica")
                async with session.post(
                    f"{fleet[1].admin_url}/-/rollback", json={"group": "reservations"}, headers=AUTH
                ) as answer:
                    rolled = await answer.json()
                    assert answer.status == 200, rolled
                await wait_for(lambda: everywhere("legacy"), 5, "the group rollback everywhere")
    entries = (await audit(etcd_url))[1:]
    assert [(e["action"], e["group"], e["user"], e["revision"]) for e in entries] == [
        ("flip", "reservations", "admin", flipped["revision"]),
        ("rollback", "reservations", "admin", rolled["revision"]),
    ]
    assert entries[1]["members"] == {
        "bookings": {"from": "drf", "to": "legacy"}, "customers": {"from": "drf", "to": "legacy"}
    }  # fmt: skip
