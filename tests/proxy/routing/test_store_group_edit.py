"""proxy.routing.store_edit's group flip and rollback on a real etcd: the same text and audit as on
routes.yaml, every member and the one audit entry in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy.routing import edit, group_edit, store_edit
from proxy.routing.store import RouteStore, parse_store_url
from tests.support.control import GROUP_ROUTES as ROUTES
from tests.support.control import write


@pytest.fixture
async def store(etcd_url: str) -> AsyncIterator[RouteStore]:
    async with RouteStore(parse_store_url(etcd_url)) as opened:
        await opened.push(ROUTES, {"action": "push", "user": "ana"}, expected_revision=0)
        yield opened


def by(store: RouteStore, user: str = "ana") -> edit.Author:
    return store_edit.author(store, user, "why", environ={})


def without(entry: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key not in keys}


async def test_the_same_group_steps_give_the_same_text_and_audit(
    store: RouteStore, tmp_path: Path
) -> None:
    routes = write(tmp_path / "routes.yaml", ROUTES)
    steps = [
        ("flip-group", "reservations", "drf"),
        ("flip-group", "reservations", "drf"),  # all there: not recorded
        ("rollback", "customers", ""),  # a member alone
        ("rollback-group", "reservations", ""),  # the others; customers kept
        ("rollback-group", "catalogue", ""),  # never flipped: each member's own rollback
    ]
    for action, name, backend in steps:
        on_file: edit.Change
        on_store: edit.Change
        if action == "flip-group":
            on_file = group_edit.flip_group(routes, name, backend, user="ana", reason="why",
                                            environ={})  # fmt: skip
            on_store = await store_edit.flip_group(store, name, backend, by(store))
        elif action == "rollback-group":
            on_file = group_edit.rollback_group(routes, name, user="ana", reason="why", environ={})
            on_store = await store_edit.rollback_group(store, name, by(store))
        else:
            on_file = edit.rollback(routes, name, user="ana", reason="why", environ={})
            on_store = await store_edit.rollback(store, name, by(store))
        assert without(on_store.to_json(), "time") == without(on_file.to_json(), "time")
        assert on_store.recorded == on_file.recorded
        assert (on_store.revision > 0) == on_store.recorded
    assert (
        (await store.read()).text
        == routes.read_text()
        == ROUTES.replace("  tours: drf\n", "  tours: legacy\n")
    )
    stored = [without(e, "time", "revision") for e in (await store.audit())[1:]]
    on_disk = [without(e, "time") for e in edit.read_audit(edit.audit_path(routes))]
    assert stored == on_disk
    assert [(e["action"], e.get("group"), e["resource"]) for e in stored] == [
        ("flip", "reservations", ""),
        ("rollback", None, "customers"),
        ("rollback", "reservations", ""),
        ("rollback", "catalogue", ""),
    ]


async def test_a_group_flip_is_one_transaction_with_its_entry(store: RouteStore) -> None:
    before = await store.read()
    change = await store_edit.flip_group(store, "reservations", "drf", by(store, "alice"))
    after = await store.read()
    [entry] = (await store.audit())[1:]
    # the text and the entry in one etcd transaction: one new revision for both
    assert change.revision == after.revision == entry["revision"] == before.store_revision + 1
    assert (entry["user"], entry["group"], entry["to"]) == ("alice", "reservations", "drf")
    assert sorted(entry["members"]) == ["bookings", "customers", "payments"]
    assert after.text == ROUTES.replace("bookings: legacy ", "bookings: drf ").replace(
        "customers: 'legacy'", "customers: 'drf'"
    ).replace("    backend: legacy ", "    backend: drf ")


async def test_group_flips_racing_from_replicas_write_once(store: RouteStore) -> None:
    replicas = [RouteStore(store.url) for _ in range(3)]
    try:
        changes = await asyncio.gather(
            *(store_edit.flip_group(r, "catalogue", "drf", by(r)) for r in replicas)
        )
    finally:
        for replica in replicas:
            await replica.close()
    assert sorted(change.recorded for change in changes) == [False, False, True]
    assert [e.get("group") for e in (await store.audit())[1:]] == ["catalogue"]


async def test_a_refused_group_flip_writes_nothing(store: RouteStore) -> None:
    before = await store.read()
    with pytest.raises(edit.EditError, match=r"unknown group 'nope' \(groups: catalogue, "):
        await store_edit.flip_group(store, "nope", "drf", by(store))
    assert (await store.read()).store_revision == before.store_revision
