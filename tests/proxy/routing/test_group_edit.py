"""proxy.routing.group_edit: a group's flip and rollback, as pure plans and on routes.yaml (exactly
the members' lines changed, one audit line naming the group), and the undo stacks of
proxy.routing.audit that group entries feed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy.routing import edit, group_edit
from proxy.routing.audit import group_flip_in_force, rollback_target, touches, undo_stacks
from proxy.routing.edit import Author
from proxy.routing.group_edit import GroupChange, plan_group_flip, plan_group_rollback
from proxy.routing.parser import load_table, parse_table
from tests.support.control import GROUP_ROUTES as ROUTES
from tests.support.control import write

AUTHOR = Author("ana", "why", "routes.yaml", {})


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    return write(tmp_path / "routes.yaml", ROUTES)


def audit(routes: Path) -> list[dict[str, Any]]:
    path = edit.audit_path(routes)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def changed_lines(before: str, after: str) -> list[tuple[int, str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return [(n + 1, a, b) for n, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]


def moves(change: GroupChange) -> list[tuple[str, str, str]]:
    return [(move.resource, move.from_backend, move.to_backend) for move in change.moves]


def plan_flip(text: str, audit: list[dict[str, Any]], group: str, backend: str) -> Any:
    table = parse_table(text, environ={})
    return plan_group_flip(text, table, audit, group=group, backend=backend, author=AUTHOR)


def plan_rollback(text: str, audit: list[dict[str, Any]], group: str) -> Any:
    table = parse_table(text, environ={})
    return plan_group_rollback(text, table, audit, group=group, author=AUTHOR)


# -- the plans: pure ---------------------------------------------------------------------------


def test_plan_flip_edits_each_moved_member_and_keeps_the_others() -> None:
    text = ROUTES.replace("  customers: 'legacy'", "  customers: 'drf'")
    new_text, change = plan_flip(text, [], "reservations", "drf")
    assert changed_lines(text, new_text) == [
        (10, "  bookings: legacy               # short form\n",
             "  bookings: drf               # short form\n"),
        (13, "    backend: legacy              # whole resource\n",
             "    backend: drf              # whole resource\n"),
    ]  # fmt: skip
    assert moves(change) == [("bookings", "legacy", "drf"), ("payments", "legacy", "drf")]
    assert (change.group, change.kept, change.action, change.recorded) == (
        "reservations", ("customers",), "flip", True
    )  # fmt: skip
    entry = change.to_json()
    assert entry.pop("time").endswith("Z")
    assert entry == {
        "user": "ana", "group": "reservations", "resource": "", "from": "", "to": "drf",
        "members": {"bookings": {"from": "legacy", "to": "drf"},
                    "payments": {"from": "legacy", "to": "drf"}},
        "kept": ["customers"], "reason": "why", "action": "flip",
    }  # fmt: skip


def test_plan_flip_with_every_member_there_plans_no_text() -> None:
    new_text, change = plan_flip(ROUTES, [], "catalogue", "drf")
    assert new_text is not None  # departures moves
    new_text, change = plan_flip(new_text, [], "catalogue", "drf")
    assert (new_text, change.recorded, change.moves, change.kept) == (
        None, False, (), ("tours", "departures")
    )  # fmt: skip


@pytest.mark.parametrize(
    ("group", "backend", "message"),
    [
        ("nope", "drf", r"^unknown group 'nope' \(groups: catalogue, reservations\)$"),
        ("bookings", "drf", r"^unknown group 'bookings' \(groups: catalogue, reservations\)$"),
        ("reservations", "drff", r"^unknown backend 'drff' \(backends: drf, legacy\)$"),
    ],
)
def test_plan_flip_refuses(group: str, backend: str, message: str) -> None:
    with pytest.raises(edit.EditError, match=message):
        plan_flip(ROUTES, [], group, backend)


def test_plan_flip_pauses_a_members_running_rollout() -> None:
    text = ROUTES.replace(
        "  departures: legacy\n",
        "  departures:\n    backend: legacy\n"
        "    rollout: {to: drf, steps: [5, 100], state: running}\n",
    )
    new_text, change = plan_flip(text, [], "catalogue", "drf")
    assert change.paused and change.paused_members == ("departures",)
    route = parse_table(new_text, environ={}).routes["departures"]
    assert route.backend == "drf" and route.rollout is not None
    assert route.rollout.state == "paused"


def test_plan_rollback_undoes_the_groups_flip() -> None:
    text, flip = plan_flip(ROUTES, [], "reservations", "drf")
    log = [flip.to_json()]
    back, change = plan_rollback(text, log, "reservations")
    assert back == ROUTES
    assert moves(change) == [
        ("bookings", "drf", "legacy"), ("customers", "drf", "legacy"), ("payments", "drf", "legacy")
    ]  # fmt: skip
    assert change.to_json()["to"] == "" and change.kept == ()


def test_plan_rollback_keeps_a_member_moved_on_its_own_since() -> None:
    text, flip = plan_flip(ROUTES, [], "reservations", "drf")
    log = [flip.to_json()]
    # bookings rolled back alone: back to legacy, the group flip undone for it only
    assert rollback_target(log, "bookings") == "legacy"
    text = text.replace("  bookings: drf ", "  bookings: legacy ")
    log.append({"resource": "bookings", "from": "drf", "to": "legacy", "action": "rollback"})
    back, change = plan_rollback(text, log, "reservations")
    assert moves(change) == [("customers", "drf", "legacy"), ("payments", "drf", "legacy")]
    assert change.kept == ("bookings",)
    assert back == ROUTES
    # the group's flip is undone now: a second group rollback is each member's own rollback
    log.append(change.to_json())
    assert group_flip_in_force(log, "reservations") is None
    assert plan_rollback(back, log, "reservations")[1].recorded is False  # all on default


def test_plan_rollback_with_no_group_flip_rolls_each_member_back() -> None:
    log = [{"resource": "tours", "from": "legacy", "to": "drf", "action": "flip"}]
    text, change = plan_rollback(ROUTES, log, "catalogue")
    assert moves(change) == [("tours", "drf", "legacy")]  # departures: nothing to undo
    assert change.kept == ("departures",)
    assert text == ROUTES.replace("  tours: drf\n", "  tours: legacy\n")


def test_plan_rollback_to_a_backend_gone_is_refused() -> None:
    log = [{"group": "catalogue", "members": {"tours": {"from": "old", "to": "drf"}},
            "action": "flip"}]  # fmt: skip
    with pytest.raises(edit.EditError, match=r"^cannot roll back 'tours' to 'old': no such"):
        plan_rollback(ROUTES, log, "catalogue")


# -- the undo stacks group entries feed --------------------------------------------------------


def test_group_entries_feed_each_members_undo_stack() -> None:
    log = [
        {"resource": "bookings", "from": "legacy", "to": "drf2", "action": "flip"},
        {"group": "g", "resource": "", "from": "", "to": "drf",
         "members": {"bookings": {"from": "drf2", "to": "drf"},
                     "tours": {"from": "legacy", "to": "drf"}}, "action": "flip"},
        {"resource": "", "action": "push"},
    ]  # fmt: skip
    assert rollback_target(log, "bookings") == "drf2"
    assert rollback_target(log, "tours") == "legacy"
    assert rollback_target(log, "") is None
    assert [frame.entry for frame in undo_stacks(log)["bookings"]] == [0, 1]
    assert group_flip_in_force(log, "g") == 1
    assert [touches(entry, "tours") for entry in log] == [False, True, False]
    log.append({"group": "g", "members": {"bookings": {"from": "drf", "to": "drf2"}},
                "action": "rollback"})  # fmt: skip
    assert rollback_target(log, "bookings") == "legacy"
    assert rollback_target(log, "tours") == "legacy"  # not moved by that rollback
    assert group_flip_in_force(log, "g") is None


# -- routes.yaml ---------------------------------------------------------------------------------


def test_flip_group_on_the_file_changes_exactly_the_members_lines(routes: Path) -> None:
    change = group_edit.flip_group(routes, "reservations", "drf", user="ana", reason="green",
                                   environ={})  # fmt: skip
    assert changed_lines(ROUTES, routes.read_text()) == [
        (10, "  bookings: legacy               # short form\n",
             "  bookings: drf               # short form\n"),
        (11, "  customers: 'legacy'\n", "  customers: 'drf'\n"),
        (13, "    backend: legacy              # whole resource\n",
             "    backend: drf              # whole resource\n"),
    ]  # fmt: skip
    [entry] = audit(routes)
    assert entry == change.to_json()
    assert (entry["user"], entry["group"], entry["reason"], entry["action"]) == (
        "ana", "reservations", "green", "flip"
    )  # fmt: skip
    assert entry["members"] == {name: {"from": "legacy", "to": "drf"}
                                for name in ("bookings", "customers", "payments")}  # fmt: skip
    table = load_table(routes, environ={})
    assert {name: table.backend_for(name) for name in table.groups["reservations"]} == {
        "bookings": "drf", "customers": "drf", "payments": "drf"
    }  # fmt: skip
    assert group_edit.describe(change) == [
        "group reservations (flip):", "  bookings: legacy -> drf", "  customers: legacy -> drf",
        "  payments: legacy -> drf",
    ]  # fmt: skip


def test_flip_group_already_there_writes_nothing(routes: Path) -> None:
    text = ROUTES.replace("  departures: legacy", "  departures: drf")
    routes.write_text(text)
    change = group_edit.flip_group(routes, "catalogue", "drf", user="ana", environ={})
    assert (change.recorded, routes.read_text(), audit(routes)) == (False, text, [])
    assert group_edit.describe(change) == [
        "group catalogue (flip):", "  tours: already on drf", "  departures: already on drf",
        "  nothing changed",
    ]  # fmt: skip


def test_a_refused_group_flip_writes_nothing(routes: Path) -> None:
    with pytest.raises(edit.EditError, match="unknown group 'nope'"):
        group_edit.flip_group(routes, "nope", "drf", user="ana", environ={})
    assert (routes.read_text(), audit(routes)) == (ROUTES, [])


def test_flip_then_member_rollback_then_group_rollback_on_the_file(routes: Path) -> None:
    group_edit.flip_group(routes, "reservations", "drf", user="ana", environ={})
    single = edit.rollback(routes, "customers", user="bob", reason="5xx", environ={})
    assert (single.from_backend, single.to_backend) == ("drf", "legacy")
    change = group_edit.rollback_group(routes, "reservations", user="cy", environ={})
    assert moves(change) == [("bookings", "drf", "legacy"), ("payments", "drf", "legacy")]
    assert change.kept == ("customers",)
    assert routes.read_text() == ROUTES
    entries = audit(routes)
    assert [(e["user"], e["action"], e.get("group"), e["resource"]) for e in entries] == [
        ("ana", "flip", "reservations", ""),
        ("bob", "rollback", None, "customers"),
        ("cy", "rollback", "reservations", ""),
    ]
    assert entries[-1]["members"] == {
        "bookings": {"from": "drf", "to": "legacy"}, "payments": {"from": "drf", "to": "legacy"}
    }  # fmt: skip
    assert entries[-1]["kept"] == ["customers"]
