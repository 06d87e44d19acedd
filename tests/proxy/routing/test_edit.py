"""proxy.routing.edit: one-line atomic edits of routes.yaml, audit log, rollback semantics,
locking."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest

from proxy.routing import edit
from proxy.routing.model import RoutesError
from proxy.routing.parser import load_table
from tests.support.control import ROUTES, write


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    return write(tmp_path / "routes.yaml")


def audit(routes: Path) -> list[dict[str, str]]:
    path = routes.with_name("routes.audit.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def changed_lines(before: str, after: str) -> list[tuple[int, str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return [(n + 1, a, b) for n, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]


def flip(routes: Path, resource: str, backend: str, reason: str = "") -> edit.Change:
    return edit.flip(routes, resource, backend, user="ana", reason=reason, environ={})


def rollback(routes: Path, resource: str) -> edit.Change:
    return edit.rollback(routes, resource, user="ana", reason="undo", environ={})


def test_flip_short_form_changes_only_that_value(routes: Path) -> None:
    change = flip(routes, "bookings", "drf", reason="contract tests pass")
    assert changed_lines(ROUTES, routes.read_text()) == [
        (11, "  bookings: legacy               # short form\n",
             "  bookings: drf               # short form\n"),
    ]  # fmt: skip
    assert (change.from_backend, change.to_backend, change.recorded) == ("legacy", "drf", True)
    assert load_table(routes, environ={}).routes["bookings"].backend == "drf"


def test_flip_keeps_quoting(routes: Path) -> None:
    flip(routes, "customers", "drf")
    assert changed_lines(ROUTES, routes.read_text()) == [
        (12, "  customers: 'legacy'\n", "  customers: 'drf'\n")
    ]


def test_flip_long_form_changes_the_backend_line(routes: Path) -> None:
    flip(routes, "itineraries", "drf")
    assert changed_lines(ROUTES, routes.read_text()) == [
        (14, "    backend: legacy              # whole resource\n",
             "    backend: drf              # whole resource\n"),
    ]  # fmt: skip
    route = load_table(routes, environ={}).routes["itineraries"]
    assert (route.backend, dict(route.methods)) == ("drf", {"GET": "drf"})


def test_flip_adds_an_unlisted_resource_after_the_last_one(routes: Path) -> None:
    change = flip(routes, "departures", "drf")
    lines = routes.read_text().splitlines(keepends=True)
    assert lines[17] == "  departures: drf\n"
    assert lines[:17] + lines[18:] == ROUTES.splitlines(keepends=True)
    assert (change.from_backend, change.to_backend) == ("legacy", "drf")
    assert load_table(routes, environ={}).routes["departures"].backend == "drf"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("resources:\n", "resources:\n  tours: drf\n"),
        ("resources: {}\n", "resources: {tours: drf}\n"),
        ("resources: {bookings: legacy}\n", "resources: {bookings: legacy, tours: drf}\n"),
        ("", "resources:\n  tours: drf\n"),
        ("resources:\n  a: legacy\n  b:\n    backend: legacy\n    methods:\n      GET: drf\n# end",
         "resources:\n  a: legacy\n  b:\n    backend: legacy\n    methods:\n      GET: drf\n"
         "  tours: drf\n# end"),
    ],
)  # fmt: skip
def test_adding_a_resource_to_any_resources_shape(tmp_path: Path, before: str, after: str) -> None:
    head = "version: 1\nbackends:\n  legacy: {url: 'http://h:1'}\n  drf: {url: 'http://h:2'}\n"
    head += "default: legacy\n"
    routes = write(tmp_path / "routes.yaml", head + before)
    flip(routes, "tours", "drf")
    assert routes.read_text() == head + after


def test_unknown_backend_is_refused_and_nothing_written(routes: Path) -> None:
    with pytest.raises(edit.EditError, match=r"^unknown backend 'drff' \(backends: drf, legacy\)$"):
        flip(routes, "bookings", "drff")
    assert routes.read_text() == ROUTES
    assert audit(routes) == []


@pytest.mark.parametrize("resource", ["a//b", "*/b", "other", "", "sp ace"])
def test_invalid_resource_name_is_refused(routes: Path, resource: str) -> None:
    with pytest.raises(edit.EditError, match=f"^invalid resource name '{re.escape(resource)}'$"):
        flip(routes, resource, "drf")
    assert routes.read_text() == ROUTES


def test_flip_to_the_current_backend_changes_nothing(routes: Path) -> None:
    change = flip(routes, "tours", "drf")
    assert (change.from_backend, change.to_backend, change.recorded) == ("drf", "drf", False)
    assert routes.read_text() == ROUTES
    assert audit(routes) == []


def test_audit_line(routes: Path) -> None:
    flip(routes, "bookings", "drf", reason="DRF passed the contract")
    [entry] = audit(routes)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
    assert entry == {
        "user": "ana",
        "resource": "bookings",
        "from": "legacy",
        "to": "drf",
        "reason": "DRF passed the contract",
        "action": "flip",
    }


def test_flip_then_rollback_returns_to_the_previous_backend(routes: Path) -> None:
    flip(routes, "tours", "legacy")
    change = rollback(routes, "tours")
    assert (change.from_backend, change.to_backend, change.action) == ("legacy", "drf", "rollback")
    assert routes.read_text() == ROUTES
    assert [(e["action"], e["from"], e["to"]) for e in audit(routes)] == [
        ("flip", "drf", "legacy"),
        ("rollback", "legacy", "drf"),
    ]


def test_rollbacks_undo_flips_newest_first_then_go_to_default(tmp_path: Path) -> None:
    text = ROUTES.replace("backends:\n", "backends:\n  new: {url: 'http://h:3'}\n")
    routes = write(tmp_path / "routes.yaml", text.replace("tours: drf", "tours: new"))
    flip(routes, "tours", "drf")
    flip(routes, "tours", "legacy")
    flip(routes, "bookings", "drf")  # another resource's history does not interfere
    targets = [rollback(routes, "tours").to_backend for _ in range(4)]
    assert targets == ["drf", "new", "legacy", "legacy"]


def test_rollback_without_a_recorded_flip_goes_to_default(routes: Path) -> None:
    change = rollback(routes, "tours")
    assert (change.from_backend, change.to_backend) == ("drf", "legacy")
    assert load_table(routes, environ={}).routes["tours"].backend == "legacy"


def test_rollback_of_an_unlisted_resource_leaves_the_file(routes: Path) -> None:
    change = rollback(routes, "departures")
    assert (change.from_backend, change.to_backend) == ("legacy", "legacy")
    assert routes.read_text() == ROUTES
    assert len(audit(routes)) == 1


def test_rollback_target_ignores_garbage_lines(routes: Path) -> None:
    flip(routes, "tours", "legacy")
    with routes.with_name("routes.audit.jsonl").open("a") as log:
        log.write("not json\n[1, 2]\n")
    assert rollback(routes, "tours").to_backend == "drf"


def test_write_is_atomic_and_keeps_the_mode(routes: Path) -> None:
    routes.chmod(0o640)
    inode = routes.stat().st_ino
    flip(routes, "bookings", "drf")
    assert routes.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert routes.stat().st_mode & 0o777 == 0o640
    names = sorted(path.name for path in routes.parent.iterdir())
    assert names == [".routes.yaml.lock", "routes.audit.jsonl", "routes.yaml"]


def test_symlinked_routes_file_is_refused(tmp_path: Path) -> None:
    real = write(tmp_path / "real.yaml")
    link = tmp_path / "routes.yaml"
    link.symlink_to(real)
    with pytest.raises(edit.EditConflict, match="is a symbolic link"):
        flip(link, "bookings", "drf")
    assert real.read_text() == ROUTES
    assert link.is_symlink()


def test_an_invalid_file_is_not_edited(routes: Path) -> None:
    routes.write_text(ROUTES.replace("tours: drf", "tours: drff"))
    with pytest.raises(RoutesError) as caught:
        flip(routes, "bookings", "drf")
    assert caught.value.errors == (f"{routes}:17: unknown backend 'drff' for resource 'tours'",)


def test_concurrent_flips_lose_no_update(routes: Path) -> None:
    names = [f"r{number}" for number in range(12)]
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            flip(routes, name, "drf")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    table = load_table(routes, environ={})
    assert {name: table.routes[name].backend for name in names} == dict.fromkeys(names, "drf")
    assert sorted(entry["resource"] for entry in audit(routes)) == sorted(names)
    assert not [name for name in os.listdir(routes.parent) if name.endswith(".tmp")]


def rollback_if(routes: Path, resource: str, expected: str) -> edit.Change | None:
    return edit.rollback_if(routes, resource, expected, user="guard", reason="why", environ={})


def test_rollback_if_rolls_back_only_from_the_expected_backend(routes: Path) -> None:
    flip(routes, "bookings", "drf")
    assert rollback_if(routes, "bookings", "legacy") is None
    assert len(audit(routes)) == 1
    change = rollback_if(routes, "bookings", "drf")
    assert change is not None
    assert (change.from_backend, change.to_backend, change.action) == ("drf", "legacy", "rollback")
    assert "  bookings: legacy               # short form\n" in routes.read_text()
    assert audit(routes)[-1]["user"] == "guard" and audit(routes)[-1]["reason"] == "why"
    assert rollback_if(routes, "bookings", "drf") is None
    assert len(audit(routes)) == 2


def test_rollback_if_does_nothing_when_the_rollback_would_not_move(routes: Path) -> None:
    before = routes.read_text()
    assert rollback_if(routes, "bookings", "legacy") is None  # on default, no flip to undo
    assert routes.read_text() == before and audit(routes) == []


def test_racing_rollback_ifs_roll_back_once(routes: Path) -> None:
    flip(routes, "bookings", "drf")
    barrier = threading.Barrier(8)
    results: list[edit.Change | None] = []

    def run() -> None:
        barrier.wait()
        results.append(rollback_if(routes, "bookings", "drf"))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len([result for result in results if result is not None]) == 1
    assert [entry["action"] for entry in audit(routes)] == ["flip", "rollback"]
    assert load_table(routes, environ={}).routes["bookings"].backend == "legacy"


# -- the guard's canary stop ---------------------------------------------------------------------

CANARY_ROUTES = ROUTES.replace(
    "    methods: {GET: drf}\n",
    "    methods: {GET: drf}\n    canary: {backend: drf, percent: 12.5}   # a share\n",
)


def stop_canary_if(routes: Path, expected: str = "drf", main: str = "legacy") -> edit.Change | None:
    return edit.stop_canary_if(
        routes, "itineraries", expected, main, user="guard", reason="why", environ={}
    )


def test_stop_canary_if_sets_the_percent_to_0_and_nothing_else(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.yaml", CANARY_ROUTES)
    change = stop_canary_if(routes)
    assert change is not None
    assert (change.from_backend, change.to_backend, change.action) == (
        "drf",
        "legacy",
        "stop_canary",
    )
    assert changed_lines(CANARY_ROUTES, routes.read_text()) == [
        (
            16,
            "    canary: {backend: drf, percent: 12.5}   # a share\n",
            "    canary: {backend: drf, percent: 0}   # a share\n",
        )
    ]
    assert [(entry["user"], entry["action"], entry["reason"]) for entry in audit(routes)] == [
        ("guard", "stop_canary", "why (canary 12.5% -> 0%)")
    ]
    assert stop_canary_if(routes) is None  # already stopped: nothing written
    assert len(audit(routes)) == 1


@pytest.mark.parametrize(("expected", "main"), [("legacy", "legacy"), ("drf", "drf")])
def test_stop_canary_if_does_nothing_when_the_table_changed(
    tmp_path: Path, expected: str, main: str
) -> None:
    routes = write(tmp_path / "routes.yaml", CANARY_ROUTES)
    assert stop_canary_if(routes, expected, main) is None
    assert routes.read_text() == CANARY_ROUTES and audit(routes) == []


def test_racing_stop_canary_ifs_stop_it_once(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.yaml", CANARY_ROUTES)
    barrier = threading.Barrier(6)
    results: list[edit.Change | None] = []

    def run() -> None:
        barrier.wait()
        results.append(stop_canary_if(routes))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([result for result in results if result is not None]) == 1
    assert [entry["action"] for entry in audit(routes)] == ["stop_canary"]
    canary = load_table(routes, environ={}).routes["itineraries"].canary
    assert canary is not None and canary.percent == 0.0
