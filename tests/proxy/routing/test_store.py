"""proxy.routing.store against a real etcd: reads, compare-and-swap edits, push, the audit log,
the watch, leases, failover."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from proxy.routing.etcd import encode
from proxy.routing.store import (
    Replica,
    RouteStore,
    StoreConflict,
    StoreError,
    StoreUrl,
    TableText,
    parse_store_url,
)
from tests.support import free_port
from tests.support.etcd import EtcdServer

TEXT = "version: 1\n# the table\n"


@pytest.fixture
async def store(etcd_url: str) -> AsyncIterator[RouteStore]:
    async with RouteStore(parse_store_url(etcd_url), timeout=1.0) as opened:
        yield opened


def put_directly(store: RouteStore, key: str, value: str) -> None:
    """A write by somebody else, synchronously (inside a `change`): plain HTTP to etcd."""
    body = json.dumps({"key": encode(key), "value": encode(value)}).encode()
    with urllib.request.urlopen(store.url.endpoints[0] + "/v3/kv/put", body, timeout=5) as answer:
        assert answer.status == 200


def entry(action: str, **fields: Any) -> dict[str, Any]:
    return {"time": "2026-11-28T10:00:00.000Z", "user": "ana", "action": action, **fields}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("etcd://127.0.0.1:2379/strangler", StoreUrl(("http://127.0.0.1:2379",), "/strangler")),
        (
            "etcd://h1:2379,h2:2380/a/b/",
            StoreUrl(("http://h1:2379", "http://h2:2380"), "/a/b"),
        ),
    ],
)
def test_parse_store_url(url: str, expected: StoreUrl) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://h:2379/p",
        "etcd://h:2379",
        "etcd://h:2379/",
        "etcd://h/p",
        "etcd://h:0/p",
        "etcd://:1/p",
    ],
)
def test_parse_store_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match=r"etcd://HOST:PORT"):
        parse_store_url(url)


async def test_read_absent_then_pushed(store: RouteStore) -> None:
    empty = await store.read()
    assert (empty.text, empty.revision) == (None, 0)
    revision = await store.push(TEXT, entry("push"), expected_revision=0)
    assert revision > empty.store_revision
    assert await store.read() == TableText(TEXT, revision, revision)


async def test_push_conflict_and_force(store: RouteStore) -> None:
    first = await store.push(TEXT, entry("push", reason="one"), expected_revision=0)
    with pytest.raises(StoreConflict, match=f"changed since revision 0 .*revision {first} now"):
        await store.push("version: 1\n", entry("push", reason="two"), expected_revision=0)
    assert (await store.read()).text == TEXT
    forced = await store.push("version: 1\n", entry("push", reason="three"), expected_revision=None)
    assert (await store.read()).text == "version: 1\n"
    assert [(e["reason"], e["revision"]) for e in await store.audit()] == [
        ("one", first),
        ("three", forced),
    ]


async def test_edit_writes_text_and_entry_together(store: RouteStore) -> None:
    await store.push(TEXT, entry("push"), expected_revision=0)
    text, written, revision = await store.edit(
        lambda text, audit: ((text or "") + "x: 1\n", entry("flip", seen=len(audit)))
    )
    assert text == TEXT + "x: 1\n"
    assert written == entry("flip", seen=1, revision=revision)
    assert await store.read() == TableText(text, revision, revision)
    assert (await store.audit())[-1] == written


async def test_edit_retries_after_a_conflicting_text_write(store: RouteStore) -> None:
    await store.push(TEXT, entry("push"), expected_revision=0)
    seen: list[str | None] = []

    def change(text: str | None, audit: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        seen.append(text)
        if len(seen) == 1:
            put_directly(store, store.routes_key, TEXT + "other: 1\n")
        return (text or "") + "mine: 1\n", entry("flip")

    text, _, _ = await store.edit(change)
    assert seen == [TEXT, TEXT + "other: 1\n"]
    assert text == (await store.read()).text == TEXT + "other: 1\nmine: 1\n"
    assert len(await store.audit()) == 2


async def test_edit_retries_after_a_conflicting_audit_entry(store: RouteStore) -> None:
    await store.push(TEXT, entry("push"), expected_revision=0)
    seen: list[int] = []

    def change(text: str | None, audit: list[dict[str, Any]]) -> tuple[None, dict[str, Any]]:
        seen.append(len(audit))
        if len(seen) == 1:
            put_directly(store, store.audit_prefix + "0-other", json.dumps(entry("rollback")))
        return None, entry("rollback", seen=len(audit))

    text, written, _ = await store.edit(change)
    assert (seen, text) == ([1, 2], None)
    assert written is not None and written["seen"] == 2
    assert [e["action"] for e in await store.audit()] == ["push", "rollback", "rollback"]


async def test_edit_with_nothing_to_write(store: RouteStore) -> None:
    pushed = await store.push(TEXT, entry("push"), expected_revision=0)
    assert await store.edit(lambda text, audit: (None, None)) == (None, None, pushed)
    assert (await store.read()).store_revision == pushed


async def test_edit_propagates_the_change_error(store: RouteStore) -> None:
    pushed = await store.push(TEXT, entry("push"), expected_revision=0)

    def refuse(text: str | None, audit: list[dict[str, Any]]) -> tuple[str, None]:
        raise ValueError("unknown backend 'nope'")

    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        await store.edit(refuse)
    assert (await store.read()).store_revision == pushed


async def test_concurrent_edits_are_all_kept_in_order(etcd_url: str) -> None:
    url = parse_store_url(etcd_url)
    stores = [RouteStore(url) for _ in range(4)]
    try:
        await stores[0].push("", entry("push"), expected_revision=0)

        async def add(store: RouteStore, line: str) -> None:
            await store.edit(
                lambda text, audit: ((text or "") + line + "\n", entry("add", line=line))
            )

        lines = [f"s{n}-{i}" for i in range(5) for n in range(4)]
        await asyncio.gather(*(add(stores[n % 4], line) for n, line in enumerate(lines)))
        final = (await stores[0].read()).text
        audit = (await stores[0].audit())[1:]
    finally:
        for store in stores:
            await store.close()
    assert final is not None and sorted(final.splitlines()) == sorted(lines)
    assert [e["line"] for e in audit] == final.splitlines()  # audit order is write order
    revisions = [e["revision"] for e in audit]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(lines)


async def test_watch_sees_every_change(store: RouteStore) -> None:
    start = await store.read()
    seen: list[TableText] = []

    async def follow() -> None:
        async for table in store.watch(start.store_revision):
            seen.append(table)
            if len(seen) == 3:
                return

    watching = asyncio.create_task(follow())
    first = await store.push("a: 1\n", entry("push"), expected_revision=0)
    second = await store.push("a: 2\n", entry("push"), expected_revision=first)
    await store.etcd.delete(store.routes_key)
    await asyncio.wait_for(watching, 5)
    assert [(t.text, t.revision) for t in seen[:2]] == [("a: 1\n", first), ("a: 2\n", second)]
    assert seen[2].text is None and seen[2].revision > second


async def test_watch_starts_after_the_given_revision(store: RouteStore) -> None:
    first = await store.push("a: 1\n", entry("push"), expected_revision=0)
    second = await store.push("a: 2\n", entry("push"), expected_revision=first)
    async with aclosing(store.watch(first)) as changes:
        table = await asyncio.wait_for(anext(changes), 5)
    assert (table.text, table.revision) == ("a: 2\n", second)


async def watching_until_error(store: RouteStore) -> asyncio.Task[StoreError]:
    """A watch that runs until it fails, once it has been seen to work (it saw a push)."""
    started = await store.read()
    working = asyncio.Event()

    async def watch() -> StoreError:
        try:
            async for _ in store.watch(started.store_revision):
                working.set()
        except StoreError as exc:
            return exc
        raise AssertionError("the watch ended without an error")

    task = asyncio.create_task(watch())
    await store.push(TEXT, entry("push"), expected_revision=None)
    await asyncio.wait_for(working.wait(), 5)
    return task


async def test_watch_fails_when_etcd_is_killed(etcd: EtcdServer) -> None:
    async with RouteStore(parse_store_url(etcd.url), timeout=0.5) as store:
        watching = await watching_until_error(store)
        etcd.kill()
        started = time.monotonic()
        error = await asyncio.wait_for(watching, 5)
        assert time.monotonic() - started < 1.5
        assert etcd.endpoint in str(error)


async def test_watch_fails_when_etcd_is_frozen(etcd: EtcdServer) -> None:
    async with RouteStore(parse_store_url(etcd.url), timeout=0.5) as store:
        watching = await watching_until_error(store)
        etcd.stop()
        started = time.monotonic()
        try:
            error = await asyncio.wait_for(watching, 5)
        finally:
            etcd.cont()
        assert time.monotonic() - started < 1.5  # two timeouts: quiet stream, then the probe
        assert str(error) == f"etcd at {etcd.endpoint}: no answer within 0.5s"


async def test_write_to_a_dead_store_fails_clearly(etcd: EtcdServer) -> None:
    async with RouteStore(parse_store_url(etcd.url), timeout=0.5) as store:
        pushed = await store.push(TEXT, entry("push"), expected_revision=0)
        etcd.kill()
        with pytest.raises(StoreError, match=f"etcd unreachable: {etcd.endpoint}: cannot connect"):
            await store.edit(lambda text, audit: ("changed\n", entry("flip")))
        etcd.restart()
        assert await store.read() == TableText(TEXT, pushed, pushed)
        assert len(await store.audit()) == 1


async def test_failover_to_the_next_endpoint(etcd_session: EtcdServer) -> None:
    dead = free_port()
    live = parse_store_url(etcd_session.fresh_url())
    url = StoreUrl((f"http://127.0.0.1:{dead}", *live.endpoints), live.prefix)
    async with RouteStore(url, timeout=0.5) as store:
        pushed = await store.push(TEXT, entry("push"), expected_revision=0)
        text, _, revision = await store.edit(lambda text, audit: ((text or "") + "x\n", None))
        assert await store.read() == TableText(TEXT + "x\n", revision, revision)
        async with aclosing(store.watch(pushed)) as changes:
            table = await asyncio.wait_for(anext(changes), 5)
        assert table.text == text


async def test_all_endpoints_dead(etcd_session: EtcdServer) -> None:
    ports = free_port(), free_port()
    url = StoreUrl(tuple(f"http://127.0.0.1:{port}" for port in ports), "/p")
    async with RouteStore(url, timeout=0.5) as store:
        with pytest.raises(StoreError) as raised:
            await store.read()
    message = str(raised.value)
    assert message.startswith("etcd unreachable: ")
    assert all(f"http://127.0.0.1:{port}: cannot connect" in message for port in ports)


async def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_replicas_live_under_their_lease(store: RouteStore) -> None:
    one = Replica("one", 5, "ab" * 32, "2026-11-28T10:00:00.000Z", pid=1, host="h")
    two = Replica("two", 4, "cd" * 32, "2026-11-28T10:00:01.000Z")
    lease_one = await store.register(one, ttl=2)
    lease_two = await store.register(two, ttl=2)
    assert sorted(await store.replicas(), key=lambda r: r.id) == [one, two]
    await store.share("one", "debt", b"\x00snapshot", lease_one)
    assert await store.shared("debt") == {"one": b"\x00snapshot"}

    async def only_one_left() -> bool:
        assert await store.keep_alive(lease_one)
        return [r.id for r in await store.replicas()] == ["one"]

    await wait_for(only_one_left, 6)  # two's lease expired: it was never kept alive
    assert not await store.keep_alive(lease_two)
    await store.revoke(lease_one)
    assert await store.replicas() == []
    assert await store.shared("debt") == {}
    assert not await store.keep_alive(lease_one)


async def test_write_to_a_frozen_store_times_out(etcd: EtcdServer) -> None:
    async with RouteStore(parse_store_url(etcd.url), timeout=0.5) as store:
        await store.push(TEXT, entry("push"), expected_revision=0)
        etcd.stop()
        started = time.monotonic()
        try:
            with pytest.raises(StoreError, match=r"^etcd unreachable: .*: no answer within 0.5s$"):
                await store.edit(lambda text, audit: ("changed\n", entry("flip")))
        finally:
            etcd.cont()
        assert time.monotonic() - started < 2.0


async def test_write_unanswered_is_reported_as_unknown(etcd: EtcdServer) -> None:
    async with RouteStore(parse_store_url(etcd.url), timeout=0.5) as store:
        await store.push(TEXT, entry("push"), expected_revision=0)

        def freeze_then_change(text: str | None, audit: list[dict[str, Any]]) -> tuple[str, Any]:
            etcd.stop()  # read, then frozen before the write reaches it
            return "changed\n", entry("flip")

        try:
            with pytest.raises(StoreError, match="whether the change was written is unknown"):
                await store.edit(freeze_then_change)
        finally:
            etcd.cont()
