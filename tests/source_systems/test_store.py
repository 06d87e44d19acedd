"""The SQLite store on real database files: seeding, reads, writes, determinism."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from source_systems import SYSTEMS
from source_systems.query import ListQuery
from source_systems.store import Conflict, Store
from source_systems.system import System


def tiny_seed() -> dict[str, list[dict[str, object]]]:
    return {
        "things": [
            {"id": 1, "code": 7, "name": "int seven"},
            {"id": 2, "code": "7", "name": "string seven"},
            {"id": 3, "code": 8, "name": "eight"},
        ]
    }


TINY = System("tiny", ("things", "others"), (("things", "code"),), tiny_seed)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "nested" / "dir" / "tiny.sqlite3", TINY)
    yield opened
    opened.close()


def ids(texts: list[str]) -> list[int]:
    return [json.loads(text)["id"] for text in texts]


def test_open_creates_directories_and_seeds(store: Store, tmp_path: Path) -> None:
    assert (tmp_path / "nested" / "dir" / "tiny.sqlite3").is_file()
    assert store.count("things") == 3
    assert store.count("others") == 0
    assert json.loads(store.get("things", 2) or "") == {
        "id": 2,
        "code": "7",
        "name": "string seven",
    }
    assert store.get("things", 4) is None


def test_reopen_keeps_data_and_does_not_seed_again(tmp_path: Path) -> None:
    path = tmp_path / "tiny.sqlite3"
    first = Store.open(path, TINY)
    first.create("things", {"name": "added"})
    first.replace("things", 1, {"name": "replaced"})
    first.close()
    second = Store.open(path, TINY)
    try:
        assert second.count("things") == 4
        assert json.loads(second.get("things", 1) or "") == {"id": 1, "name": "replaced"}
    finally:
        second.close()


def test_integer_filter_matches_stored_int_and_same_string(store: Store) -> None:
    assert store.select("things", ListQuery(filters=(("code", "7"),))) == (
        2,
        [
            '{"id":1,"code":7,"name":"int seven"}',
            '{"id":2,"code":"7","name":"string seven"}',
        ],
    )
    count, items = store.select("things", ListQuery(filters=(("name", "eight"),)))
    assert (count, ids(items)) == (1, [3])
    assert store.select("things", ListQuery(filters=(("missing", "1"),))) == (0, [])


def test_select_counts_all_matches_and_windows_by_id(store: Store) -> None:
    count, items = store.select("things", ListQuery(offset=1, limit=1))
    assert (count, ids(items)) == (3, [2])
    count, items = store.select("things", ListQuery(ids=(3, 1, 99)))
    assert (count, ids(items)) == (2, [1, 3])


def test_create_assigns_next_id_or_uses_given_one(store: Store) -> None:
    assert json.loads(store.create("things", {"name": "four"})) == {"id": 4, "name": "four"}
    assert json.loads(store.create("things", {"id": 10, "name": "ten"})) == {
        "id": 10,
        "name": "ten",
    }
    assert json.loads(store.create("things", {"name": "eleven"}))["id"] == 11
    with pytest.raises(Conflict):
        store.create("things", {"id": 2, "name": "taken"})
    assert store.count("things") == 6


def test_replace_and_merge_keep_the_id(store: Store) -> None:
    assert json.loads(store.replace("things", 1, {"id": 99, "x": 1}) or "") == {"id": 1, "x": 1}
    merged = store.merge("things", 3, {"code": 9, "extra": [1]})
    assert json.loads(merged or "") == {"id": 3, "code": 9, "name": "eight", "extra": [1]}
    assert store.get("things", 3) == merged
    assert store.replace("things", 42, {}) is None
    assert store.merge("things", 42, {}) is None


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_two_fresh_databases_hold_identical_data(name: str, tmp_path: Path) -> None:
    first = Store.open(tmp_path / "a.sqlite3", SYSTEMS[name])
    second = Store.open(tmp_path / "b.sqlite3", SYSTEMS[name])
    try:
        for collection in SYSTEMS[name].collections:
            query = ListQuery(limit=1000)
            assert first.select(collection, query) == second.select(collection, query)
        assert first.dump() == second.dump()
    finally:
        first.close()
        second.close()
