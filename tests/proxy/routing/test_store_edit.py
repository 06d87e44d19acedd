"""proxy.routing.store_edit: flip and rollback on a real etcd behave as on routes.yaml."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.routing import edit, store_edit
from proxy.routing.store import RouteStore, parse_store_url
from tests.support.control import ROUTES, write


@pytest.fixture
async def store(etcd_url: str) -> AsyncIterator[RouteStore]:
    async with RouteStore(parse_store_url(etcd_url)) as opened:
        await opened.push(ROUTES, {"action": "push", "user": "ana"}, expected_revision=0)
        yield opened


def by(store: RouteStore) -> edit.Author:
    return store_edit.author(store, "ana", "why", environ={})


def fields(change: edit.Change | None) -> tuple[str, str, str, str, bool] | None:
    if change is None:
        return None
    return change.resource, change.from_backend, change.to_backend, change.action, change.recorded


async def test_the_same_steps_give_the_same_text_and_audit(
    store: RouteStore, tmp_path: Path
) -> None:
    routes = write(tmp_path / "routes.yaml")
    steps = [
        ("flip", "bookings", "drf"),
        ("flip", "bookings", "drf"),  # already there: not recorded
        ("flip", "payments", "drf"),  # unlisted: added
        ("rollback", "bookings", ""),
        ("rollback", "bookings", ""),  # nothing left to undo: default
        ("rollback", "refunds", ""),  # unlisted, to default: audit only
    ]
    for action, resource, backend in steps:
        if action == "flip":
            on_file = edit.flip(routes, resource, backend, user="ana", reason="why", environ={})
            on_store = await store_edit.flip(store, resource, backend, by(store))
        else:
            on_file = edit.rollback(routes, resource, user="ana", reason="why", environ={})
            on_store = await store_edit.rollback(store, resource, by(store))
        assert fields(on_store) == fields(on_file)
        assert (on_store.revision > 0) == on_store.recorded
    assert (await store.read()).text == routes.read_text()
    drop = ("time", "revision")
    stored = [{k: v for k, v in e.items() if k not in drop} for e in (await store.audit())[1:]]
    on_disk = [
        {k: v for k, v in e.items() if k != "time"}
        for e in edit.read_audit(edit.audit_path(routes))
    ]
    assert stored == on_disk and len(stored) == 5


async def test_flip_refused_writes_nothing(store: RouteStore) -> None:
    before = await store.read()
    with pytest.raises(edit.EditError, match="unknown backend 'nope' \\(backends: drf, legacy\\)"):
        await store_edit.flip(store, "bookings", "nope", by(store))
    assert (await store.read()).store_revision == before.store_revision


async def test_flip_of_an_empty_store(etcd_url: str) -> None:
    async with RouteStore(parse_store_url(etcd_url)) as empty:
        with pytest.raises(edit.EditConflict, match="/routes: the store holds no table yet"):
            await store_edit.flip(empty, "bookings", "drf", by(empty))


async def test_rollback_if_from_three_replicas_rolls_back_once(
    store: RouteStore, etcd_url: str
) -> None:
    await store_edit.flip(store, "bookings", "drf", by(store))
    replicas = [RouteStore(store.url) for _ in range(3)]
    try:
        changes = await asyncio.gather(
            *(store_edit.rollback_if(r, "bookings", "drf", by(r)) for r in replicas)
        )
    finally:
        for replica in replicas:
            await replica.close()
    done = [change for change in changes if change is not None]
    assert [fields(change) for change in done] == [("bookings", "drf", "legacy", "rollback", True)]
    audit = await store.audit()
    assert [(e["action"], e["resource"]) for e in audit[1:]] == [
        ("flip", "bookings"),
        ("rollback", "bookings"),
    ]
    assert audit[-1]["revision"] == done[0].revision == (await store.read()).revision


async def test_stop_canary_if_from_three_replicas_stops_it_once(etcd_url: str) -> None:
    text = ROUTES.replace("    methods: {GET: drf}\n", "    canary: {backend: drf, percent: 5}\n")
    async with RouteStore(parse_store_url(etcd_url)) as store:
        await store.push(text, {"action": "push", "user": "ana"}, expected_revision=0)
        replicas = [RouteStore(store.url) for _ in range(3)]
        try:
            changes = await asyncio.gather(
                *(
                    store_edit.stop_canary_if(r, "itineraries", "drf", "legacy", by(r))
                    for r in replicas
                )
            )
        finally:
            for replica in replicas:
                await replica.close()
        done = [change for change in changes if change is not None]
        assert [fields(change) for change in done] == [
            ("itineraries", "drf", "legacy", "stop_canary", True)
        ]
        assert (await store.read()).text == text.replace("percent: 5}", "percent: 0}")
        audit = await store.audit()
        assert [(e["action"], e["reason"]) for e in audit[1:]] == [
            ("stop_canary", "why (canary 5% -> 0%)")
        ]
