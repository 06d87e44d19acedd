"""Flip and rollback of a group (`groups:` in routes.yaml): every member in one write, one
audit entry naming the group.

The plans (`plan_group_flip`, `plan_group_rollback`) are pure, like those of
`proxy.routing.edit`: from the text, its table and the audit entries they compute a
`GroupChange` and the new text, each member's line edited by `proxy.routing.yamledit` (every
other byte kept) and the result checked whole. `flip_group` and `rollback_group` apply them to
routes.yaml under its lock (`edit.apply_file`); `proxy.routing.store_edit` runs the same plans
in the store's compare-and-swap loop.

The audit entry (`GroupChange.to_json`) names the group and each member it moved, with the
backend it left, and the members it kept where they were; its own `resource` and `from` are
empty (as a `push` entry's are), its `to` is a flip's backend ("" for a rollback):

    {"time": "2026-11-28T10:00:00.000Z", "user": "ana", "group": "reservations",
     "resource": "", "from": "", "to": "drf",
     "members": {"bookings": {"from": "legacy", "to": "drf"},
                 "customers": {"from": "legacy", "to": "drf"}},
     "kept": [], "reason": "…", "action": "flip"}

Rollback (`proxy.routing.audit` keeps one undo stack per resource, fed by both kinds of entry):
`rollback --group G` undoes G's last flip: each member that flip moved and that nothing moved
since returns to the backend that flip found it on; a member flipped or rolled back on its own
since is kept where it is. When no member is where G's last flip left it (or G was never
flipped), it is the rollback of each member in one write: each to the backend its own last
flip left, else to `default`. A member's own rollback after a group flip undoes that member's
part of the group flip only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from proxy.clock import iso_time
from proxy.routing.audit import group_flip_in_force, undo_stacks
from proxy.routing.edit import Author, Change, EditConflict, EditError, Entries, apply_file
from proxy.routing.model import RouteTable
from proxy.routing.parser import parse_table
from proxy.routing.yamledit import set_backend, set_value


class Move(NamedTuple):
    resource: str
    from_backend: str
    to_backend: str


@dataclass(frozen=True)
class GroupChange(Change):
    """A change of several resources at once: `resource` and `from_backend` are "", and
    `to_backend` is a flip's backend ("" for a rollback: each member has its own)."""

    group: str = ""
    moves: tuple[Move, ...] = ()
    kept: tuple[str, ...] = ()  # members left where they are
    paused_members: tuple[str, ...] = ()  # members whose running rollout plan a flip paused

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "user": self.user,
            "group": self.group,
            "resource": "",
            "from": "",
            "to": self.to_backend,
            "members": {move.resource: {"from": move[1], "to": move[2]} for move in self.moves},
            "kept": list(self.kept),
            "reason": self.reason,
            "action": self.action,
        }


def members(table: RouteTable, group: str) -> tuple[str, ...]:
    """The members of `group`, or EditError naming the groups there are."""
    found = table.groups.get(group)
    if found is None:
        known = ", ".join(sorted(table.groups)) or "none"
        raise EditError(f"unknown group '{group}' (groups: {known})")
    return found


def plan_group_flip(
    text: str, table: RouteTable, audit: Entries, *, group: str, backend: str, author: Author
) -> tuple[str | None, GroupChange]:
    """Send every member of `group` to `backend`; members already there are kept. None moved:
    no new text, and a change that is not `recorded`."""
    names = members(table, group)
    if backend not in table.backends:
        known = ", ".join(sorted(table.backends))
        raise EditError(f"unknown backend '{backend}' (backends: {known})")
    moves = tuple(
        Move(name, table.backend_for(name), backend)
        for name in names
        if table.backend_for(name) != backend
    )
    paused = tuple(move.resource for move in moves if _running(table, move.resource))
    change = _change(author, "flip", group, moves, names, paused, backend)
    if not moves:
        return None, replace(change, recorded=False)
    return _edited(text, table, change, author), change


def plan_group_rollback(
    text: str, table: RouteTable, audit: Entries, *, group: str, author: Author
) -> tuple[str | None, GroupChange]:
    """Undo the group's last flip (or, none in force, roll each member back); see the module."""
    names = members(table, group)
    stacks = undo_stacks(audit)
    tops = {name: stacks[name][-1] if stacks.get(name) else None for name in names}
    flip = group_flip_in_force(audit, group)
    in_force = flip is not None and any(top and top.entry == flip for top in tops.values())
    moves = []
    for name in names:
        top = tops[name]
        if in_force and (top is None or top.entry != flip):
            continue  # moved on its own since the group's flip
        target = table.default if top is None else top.backend
        if top is None and target == table.backend_for(name):
            continue  # nothing to undo, already on default
        if target not in table.backends:
            raise EditError(f"cannot roll back '{name}' to '{target}': no such backend now")
        moves.append(Move(name, table.backend_for(name), target))
    change = _change(author, "rollback", group, tuple(moves), names, ())
    if not moves:
        return None, replace(change, recorded=False)
    return _edited(text, table, change, author), change


def _change(
    author: Author,
    action: str,
    group: str,
    moves: tuple[Move, ...],
    names: tuple[str, ...],
    paused: tuple[str, ...],
    backend: str = "",
) -> GroupChange:
    moved = {move.resource for move in moves}
    kept = tuple(name for name in names if name not in moved)
    return GroupChange(
        iso_time(), author.user, "", "", backend, author.reason, action, paused=bool(paused),
        group=group, moves=moves, kept=kept, paused_members=paused,
    )  # fmt: skip


def _running(table: RouteTable, resource: str) -> bool:
    route = table.routes.get(resource)
    return route is not None and route.rollout is not None and route.rollout.state == "running"


def _edited(text: str, table: RouteTable, change: GroupChange, author: Author) -> str:
    """The text with every move made (a flip pauses a member's running plan, as a resource's
    flip does), checked: the moved members changed that way, nothing else."""
    for move in change.moves:
        text = set_backend(text, move.resource, move.to_backend)
    for name in change.paused_members:
        text = set_value(text, name, ("rollout", "state"), "paused")
    new = parse_table(text, author.source, author.environ)
    expected = dict(table.routes)
    for move in change.moves:
        route = expected[move.resource]
        expected[move.resource] = replace(route, backend=move.to_backend)
    for name in change.paused_members:
        route = expected[name]
        assert route.rollout is not None
        expected[name] = replace(route, rollout=replace(route.rollout, state="paused"))
    same = (
        dict(new.routes) == expected
        and dict(new.groups) == dict(table.groups)
        and new.backends == table.backends
        and new.default == table.default
    )
    if not same:
        raise EditConflict(f"could not edit group '{change.group}' safely; nothing was changed")
    return text


# -- routes.yaml -----------------------------------------------------------------------------


def flip_group(
    routes: Path,
    group: str,
    backend: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> GroupChange:
    """`plan_group_flip` on routes.yaml: one atomic write, one audit line."""
    author = Author(user, reason, str(routes), environ)
    plan = partial(plan_group_flip, group=group, backend=backend, author=author)
    return made(apply_file(routes, plan, author, read_log=False))


def rollback_group(
    routes: Path,
    group: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> GroupChange:
    """`plan_group_rollback` on routes.yaml and its audit log."""
    author = Author(user, reason, str(routes), environ)
    return made(
        apply_file(routes, partial(plan_group_rollback, group=group, author=author), author)
    )


def made(change: Change | None) -> GroupChange:
    if not isinstance(change, GroupChange):  # a group's plans always plan a change
        raise EditConflict("nothing was planned")
    return change


def describe(change: GroupChange) -> list[str]:
    """The change as lines of text, for the command line.

    >>> describe(GroupChange("t", "ana", "", "", "drf", "", "flip", group="g",
    ...                      moves=(Move("a", "legacy", "drf"),), kept=("b",)))
    ['group g (flip):', '  a: legacy -> drf', '  b: already on drf']
    """
    lines = [f"group {change.group} ({change.action}):"]
    lines += [
        f"  {move.resource}: {move.from_backend} -> {move.to_backend}" for move in change.moves
    ]
    kept = f"already on {change.to_backend}" if change.action == "flip" else "kept where it is"
    lines += [f"  {name}: {kept}" for name in change.kept]
    lines += [f"  {name}: its running rollout plan is paused" for name in change.paused_members]
    if not change.recorded:
        lines.append("  nothing changed")
    return lines
