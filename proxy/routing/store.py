"""The routing table of a fleet, kept in etcd: read, edited by compare-and-swap, watched.

Keys, below the prefix of the store URL (`etcd://h1:2379,h2:2379/strangler`):

    <prefix>/routes                   the routes.yaml text, every byte of it
    <prefix>/audit/<time>-<random>    one JSON audit entry per change (the routes.audit.jsonl
                                      fields); its create revision is its "revision"
    <prefix>/replicas/<id>            a live replica (JSON `Replica`), under the replica's lease
    <prefix>/shared/<id>/<name>       a snapshot a replica shares (debt, diffs), under its lease

Every write of the table is one etcd transaction that puts the text and its audit entry
together, conditioned on what the writer read: the routes key's mod revision is the one read,
and no audit entry is newer than the read (so an audit-only change, such as a rollback of an
unlisted resource, also conflicts). On a failed condition `edit` reads again and re-applies its
change; a write is never half done.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from proxy.routing.etcd import (
    Etcd,
    Json,
    StoreError,
    StoreUncertain,
    decode,
    encode,
    number,
    put_request,
    range_request,
)

__all__ = [
    "Replica",
    "RouteStore",
    "StoreConflict",
    "StoreError",
    "StoreUrl",
    "TableText",
    "parse_store_url",
]

Entry = dict[str, Any]
Change = Callable[[str | None, list[Entry]], tuple[str | None, Entry | None]]
URL_FORM = "etcd://HOST:PORT[,HOST:PORT...]/PREFIX"


class StoreConflict(StoreError):
    """The table changed since the caller read it: the write was refused."""


@dataclass(frozen=True)
class StoreUrl:
    endpoints: tuple[str, ...]
    prefix: str


def parse_store_url(url: str) -> StoreUrl:
    """The endpoints and key prefix of a store URL.

    >>> parse_store_url("etcd://h1:2379,h2:2379/strangler")
    StoreUrl(endpoints=('http://h1:2379', 'http://h2:2379'), prefix='/strangler')
    """
    scheme, sep, rest = url.partition("://")
    if scheme != "etcd" or not sep:
        raise ValueError(f"store URL {url!r}: expected {URL_FORM}")
    hosts, slash, path = rest.partition("/")
    prefix = "/" + path.strip("/")
    if not slash or prefix == "/" or "//" in prefix:
        raise ValueError(f"store URL {url!r}: a key prefix is needed ({URL_FORM})")
    return StoreUrl(tuple(_endpoint(url, host) for host in hosts.split(",")), prefix)


def _endpoint(url: str, host: str) -> str:
    name, colon, port = host.strip().rpartition(":")
    if not colon or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"store URL {url!r}: {host!r} is not HOST:PORT ({URL_FORM})")
    return f"http://{name}:{int(port)}"


@dataclass(frozen=True)
class TableText:
    text: str | None  # None when the routes key does not exist (or was deleted)
    revision: int  # the routes key's mod revision (0 when absent)
    store_revision: int  # the store's revision when read


@dataclass(frozen=True)
class Replica:
    id: str
    revision: int  # the routes key's revision this replica applied
    sha256: str  # of the text it applied
    applied_at: str  # iso_time()
    source: str = "store"  # "store" or "cache" (started while the store was down)
    pid: int = 0
    host: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes) -> Replica:
        data = json.loads(raw)
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class RouteStore:
    """The table of one store URL. Create it inside the event loop; `close` it (or use
    `async with`)."""

    def __init__(self, url: StoreUrl, *, timeout: float = 2.0) -> None:
        self.url = url
        self.etcd = Etcd(url.endpoints, timeout=timeout)
        self.routes_key = f"{url.prefix}/routes"
        self.audit_prefix = f"{url.prefix}/audit/"
        self.replicas_prefix = f"{url.prefix}/replicas/"
        self.shared_prefix = f"{url.prefix}/shared/"

    async def close(self) -> None:
        await self.etcd.close()

    async def __aenter__(self) -> RouteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the table ------------------------------------------------------------------------------

    async def read(self) -> TableText:
        answer = await self.etcd.range(self.routes_key)
        return _table(answer, answer)

    async def audit(self) -> list[Entry]:
        """The audit entries, oldest first, each with the store revision that wrote it."""
        return _entries(await self.etcd.range(self.audit_prefix, prefix=True, sort_by_create=True))

    async def edit(
        self, change: Change, *, attempts: int = 50
    ) -> tuple[str | None, Entry | None, int]:
        """Apply `change(text, audit)` by compare-and-swap, re-applied on a conflict.

        `change` returns (new text or None, audit entry or None); both None writes nothing.
        Returns (new text, entry with its "revision", store revision after the write).
        """
        for _ in range(attempts):
            table, entries = await self._snapshot()
            new_text, entry = change(table.text, entries)
            if new_text is None and entry is None:
                return None, None, table.store_revision
            ops, key = self._writes(new_text, entry)
            written = await self._commit(self._unchanged_since(table), ops, key)
            if written is not None:
                return new_text, _revised(entry, written), written
        raise StoreError(f"the table kept changing: gave up after {attempts} attempts")

    async def push(self, text: str, entry: Entry, *, expected_revision: int | None) -> int:
        """Replace the table by `text` (validated by the caller), with its audit entry.

        `expected_revision`: the routes key's revision the caller based `text` on; None forces.
        Raises `StoreConflict` when the key's revision is another. Returns the new revision.
        """
        compare = (
            [] if expected_revision is None else [_mod_equal(self.routes_key, expected_revision)]
        )
        ops, key = self._writes(text, entry)
        written = await self._commit(compare, ops, key)
        if written is None:
            now = await self.read()
            raise StoreConflict(
                f"the table changed since revision {expected_revision} (it is at revision "
                f"{now.revision} now)"
            )
        return written

    def watch(self, after_revision: int) -> AsyncGenerator[TableText]:
        """Every change of the table after `after_revision`; raises `StoreError` when the watch
        breaks or etcd stops answering (the caller catches up with `read`, then watches again).
        Leaving it early: `async with contextlib.aclosing(store.watch(n)) as changes: ...`.
        """
        return self._watch(after_revision)

    async def _watch(self, after_revision: int) -> AsyncGenerator[TableText]:
        async for result in self.etcd.watch(self.routes_key, after_revision + 1):
            store_revision = number(result.get("header", {}).get("revision"))
            for event in result["events"]:
                kv = event.get("kv", {})
                text = None if event.get("type") == "DELETE" else _text(kv)
                yield TableText(text, number(kv.get("mod_revision")), store_revision)

    async def _snapshot(self) -> tuple[TableText, list[Entry]]:
        """The text and the audit log, read together (one read-only transaction)."""
        ops = [
            {"request_range": range_request(self.routes_key, False, False, False)},
            {"request_range": range_request(self.audit_prefix, True, False, True)},
        ]
        answer = await self.etcd.txn([], ops)
        routes, audit = (item.get("response_range", {}) for item in _responses(answer, 2))
        return _table(routes, answer), _entries(audit)

    def _unchanged_since(self, table: TableText) -> list[Json]:
        newer = {
            "target": "MOD",
            "key": encode(self.audit_prefix),
            "range_end": range_request(self.audit_prefix, True, False, False)["range_end"],
            "result": "LESS",
            "mod_revision": str(table.store_revision + 1),
        }
        return [_mod_equal(self.routes_key, table.revision), newer]

    def _writes(self, text: str | None, entry: Entry | None) -> tuple[list[Json], str | None]:
        ops: list[Json] = []
        if text is not None:
            ops.append({"request_put": put_request(self.routes_key, text)})
        key = None
        if entry is not None:
            key = f"{self.audit_prefix}{time.time_ns():020d}-{secrets.token_hex(4)}"
            value = json.dumps(entry, ensure_ascii=False)
            ops.append({"request_put": put_request(key, value)})
        return ops, key

    async def _commit(
        self, compare: list[Json], ops: list[Json], audit_key: str | None
    ) -> int | None:
        """The store revision of the write, or None when the condition failed.

        When no answer came, the audit entry's key tells whether the write happened (it is
        unique to this write); without one, the write is reported as failed to reach etcd.
        """
        try:
            answer = await self.etcd.txn(compare, ops)
        except StoreUncertain as exc:
            if audit_key is None:
                raise
            try:
                found = await self.etcd.range(audit_key)
            except StoreError:
                raise StoreError(f"{exc}; whether the change was written is unknown") from exc
            if not found.get("kvs"):
                raise StoreError(f"{exc}; the change was not written") from exc
            return number(found["kvs"][0].get("create_revision"))
        if not answer.get("succeeded"):
            return None
        return number(answer.get("header", {}).get("revision"))

    # -- replicas -------------------------------------------------------------------------------

    async def register(self, replica: Replica, ttl: int = 5) -> int:
        """Publish `replica` under a new lease of `ttl` seconds; the lease id."""
        lease = await self.etcd.lease_grant(ttl)
        await self.etcd.put(self.replicas_prefix + replica.id, replica.to_json(), lease=lease)
        return lease

    async def update(self, replica: Replica, lease: int) -> None:
        """Publish `replica` again (what it applied changed) under its lease."""
        await self.etcd.put(self.replicas_prefix + replica.id, replica.to_json(), lease=lease)

    async def keep_alive(self, lease: int) -> bool:
        """Refresh the lease; False when it is gone (expired or revoked): register again."""
        return await self.etcd.lease_keepalive(lease) > 0

    async def revoke(self, lease: int) -> None:
        """Drop the lease and every key under it (a replica leaving the fleet)."""
        await self.etcd.lease_revoke(lease)

    async def replicas(self) -> list[Replica]:
        answer = await self.etcd.range(self.replicas_prefix, prefix=True)
        found = []
        for kv in answer.get("kvs", []):
            try:
                found.append(Replica.from_json(decode(kv.get("value"))))
            except (ValueError, TypeError):
                continue
        return found

    async def share(self, replica_id: str, name: str, value: bytes, lease: int) -> None:
        await self.etcd.put(f"{self.shared_prefix}{replica_id}/{name}", value, lease=lease)

    async def shared(self, name: str) -> dict[str, bytes]:
        """Replica id -> the value it shares under `name`, for every live replica."""
        answer = await self.etcd.range(self.shared_prefix, prefix=True)
        values: dict[str, bytes] = {}
        for kv in answer.get("kvs", []):
            rest = decode(kv.get("key")).decode("utf-8")[len(self.shared_prefix) :]
            replica_id, _, key_name = rest.rpartition("/")
            if key_name == name and replica_id:
                values[replica_id] = decode(kv.get("value"))
        return values


def _mod_equal(key: str, revision: int) -> Json:
    return {"target": "MOD", "key": encode(key), "result": "EQUAL", "mod_revision": str(revision)}


def _responses(answer: Json, count: int) -> list[Json]:
    responses = answer.get("responses", [])
    if not answer.get("succeeded") or len(responses) != count:
        raise StoreError("etcd answered a read with something unexpected")
    return list(responses)


def _text(kv: Json) -> str:
    return decode(kv.get("value")).decode("utf-8", errors="replace")


def _table(routes: Json, answer: Json) -> TableText:
    store_revision = number(answer.get("header", {}).get("revision"))
    kvs = routes.get("kvs", [])
    if not kvs:
        return TableText(None, 0, store_revision)
    return TableText(_text(kvs[0]), number(kvs[0].get("mod_revision")), store_revision)


def _entries(answer: Json) -> list[Entry]:
    entries = []
    for kv in answer.get("kvs", []):
        try:
            entry = json.loads(decode(kv.get("value")))
        except ValueError:
            continue
        if isinstance(entry, dict):
            entry["revision"] = number(kv.get("create_revision"))
            entries.append(entry)
    return entries


def _revised(entry: Entry | None, revision: int) -> Entry | None:
    return None if entry is None else {**entry, "revision": revision}
