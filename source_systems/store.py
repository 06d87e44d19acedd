"""SQLite storage of a source system: one table `(id INTEGER PRIMARY KEY, data TEXT)` per
collection, `data` being the whole record as JSON (its `id` included), so reads hand the
stored text out without decoding it.

Every write takes a `dry_run` flag: the write runs in its transaction as usual (so it answers
exactly what it would have, the id a new record would get included) and is then rolled back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from source_systems.query import ListQuery, field_expression, where_clause
from source_systems.system import Record, System


class Conflict(Exception):
    """The id of a new record is already taken."""


def encode(record: Record) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def with_id(record_id: int, fields: Record) -> Record:
    """The record `fields` under `record_id`, id first.

    `with_id(3, {"a": 1, "id": 9})` -> `{"id": 3, "a": 1}`
    """
    return {"id": record_id, **{key: value for key, value in fields.items() if key != "id"}}


class Store:
    """The records of one system. Not thread-safe: one connection, used from one event loop."""

    def __init__(self, conn: sqlite3.Connection, system: System) -> None:
        self.conn = conn
        self.system = system

    @classmethod
    def open(cls, path: Path | str, system: System) -> Store:
        """Open (creating directories, tables and indexes) and seed when empty."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        store = cls(conn, system)
        store._create_schema()
        if store.is_empty():
            store.load(system.seed())
        return store

    def _create_schema(self) -> None:
        with self._transaction():
            for name in self.system.collections:
                columns = "id INTEGER PRIMARY KEY, data TEXT NOT NULL"
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
            for name, field in self.system.indexes:
                index, expression = f"ix_{name}_{field}", field_expression(field)
                self.conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {name} ({expression})")

    def is_empty(self) -> bool:
        return all(self.count(name) == 0 for name in self.system.collections)

    def count(self, collection: str) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {collection}").fetchone()
        return int(row[0])

    def load(self, records: dict[str, list[Record]]) -> None:
        """Insert many records in one transaction (the seed)."""
        with self._transaction():
            for name, items in records.items():
                self.conn.executemany(
                    f"INSERT INTO {name} (id, data) VALUES (?, ?)",
                    [(item["id"], encode(item)) for item in items],
                )

    def get(self, collection: str, record_id: int) -> str | None:
        """The stored JSON text of one record, or None."""
        row = self.conn.execute(
            f"SELECT data FROM {collection} WHERE id = ?", (record_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def select(self, collection: str, query: ListQuery) -> tuple[int, list[str]]:
        """(total matching, JSON texts of the requested window ordered by id)."""
        where, params = where_clause(query)
        total = self.conn.execute(f"SELECT count(*) FROM {collection}{where}", params).fetchone()
        rows = self.conn.execute(
            f"SELECT data FROM {collection}{where} ORDER BY id LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        ).fetchall()
        return int(total[0]), [str(row[0]) for row in rows]

    def create(self, collection: str, fields: Record, *, dry_run: bool = False) -> str:
        """Insert a record under its own `id`, or the next free one; raise Conflict if taken."""
        with self._transaction(dry_run):
            record_id = fields.get("id")
            if record_id is None:
                row = self.conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {collection}")
                record_id = int(row.fetchone()[0])
            elif self.get(collection, record_id) is not None:
                raise Conflict(f"id {record_id} already exists")
            data = encode(with_id(record_id, fields))
            self.conn.execute(
                f"INSERT INTO {collection} (id, data) VALUES (?, ?)", (record_id, data)
            )
        return data

    def replace(
        self, collection: str, record_id: int, fields: Record, *, dry_run: bool = False
    ) -> str | None:
        """Replace all fields of a record (its id kept); None if it does not exist."""
        data = encode(with_id(record_id, fields))
        with self._transaction(dry_run):
            cursor = self.conn.execute(
                f"UPDATE {collection} SET data = ? WHERE id = ?", (data, record_id)
            )
        return data if cursor.rowcount else None

    def merge(
        self, collection: str, record_id: int, fields: Record, *, dry_run: bool = False
    ) -> str | None:
        """Shallow-merge fields into a record (its id kept); None if it does not exist."""
        with self._transaction(dry_run):
            current = self.get(collection, record_id)
            if current is None:
                return None
            data = encode(with_id(record_id, {**json.loads(current), **fields}))
            self.conn.execute(f"UPDATE {collection} SET data = ? WHERE id = ?", (data, record_id))
        return data

    def dump(self) -> dict[str, list[Any]]:
        """Every record of every collection, decoded (for tests and inspection)."""
        return {
            name: [
                json.loads(row[0])
                for row in self.conn.execute(f"SELECT data FROM {name} ORDER BY id")
            ]
            for name in self.system.collections
        }

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _transaction(self, dry_run: bool = False) -> Iterator[None]:
        """One write transaction: committed, or rolled back on error and for a dry run."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("ROLLBACK" if dry_run else "COMMIT")
