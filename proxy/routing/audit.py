"""The audit log as the edits read it: its entries (oldest first) and the undo stacks they make.

An entry records one change, of a resource or of a group (`proxy.routing.group_edit`):

    {"time": "…", "user": "ana", "resource": "bookings", "from": "legacy", "to": "drf",
     "reason": "…", "action": "flip"}
    {"time": "…", "user": "ana", "group": "reservations", "resource": "", "from": "", "to": "",
     "members": {"bookings": {"from": "legacy", "to": "drf"},
                 "customers": {"from": "legacy", "to": "drf"}},
     "kept": ["tours"], "reason": "…", "action": "flip"}

Each resource has one undo stack, fed by both kinds: a flip (`flip`, `rollout-done`) pushes the
backend it left, a rollback pops one. A group's entry counts for each member it moved, so a
member's own rollback after a group flip returns that member alone to where the group flip
found it, and a group's rollback is a rollback of each member it moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLIPS = ("flip", "rollout-done")  # a rollout plan's end flips the resource too


@dataclass(frozen=True)
class Frame:
    """One flip not yet undone: the backend it left, and the index of its entry in the log."""

    backend: str
    entry: int


def read_audit(path: Path) -> Iterator[dict[str, Any]]:
    """The audit entries, oldest first; unreadable lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def moves(entry: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """`(resource, from)` of each resource `entry` changed: one for a resource's entry, one per
    moved member for a group's."""
    members = entry.get("members")
    if isinstance(members, Mapping):
        return [
            (name, move.get("from"))
            for name, move in members.items()
            if isinstance(name, str) and isinstance(move, Mapping)
        ]
    resource = entry.get("resource")
    return [(resource, entry.get("from"))] if isinstance(resource, str) and resource else []


def touches(entry: Mapping[str, Any], resource: str) -> bool:
    """Whether `entry` changed `resource` (alone, or as a member of a group)."""
    return any(name == resource for name, _ in moves(entry))


def undo_stacks(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[Frame]]:
    """Each resource's flips not yet undone, oldest first."""
    stacks: dict[str, list[Frame]] = {}
    for index, entry in enumerate(entries):
        action = entry.get("action")
        for resource, old in moves(entry):
            stack = stacks.setdefault(resource, [])
            if action in FLIPS and isinstance(old, str):
                stack.append(Frame(old, index))
            elif action == "rollback" and stack:
                stack.pop()
    return stacks


def rollback_target(entries: Iterable[Mapping[str, Any]], resource: str) -> str | None:
    """The backend a rollback of `resource` returns to, from the audit entries (oldest first):
    the one its last flip not yet undone left; None when every flip was undone."""
    stack = undo_stacks(entries).get(resource)
    return stack[-1].backend if stack else None


def group_flip_in_force(entries: Iterable[Mapping[str, Any]], group: str) -> int | None:
    """The index of `group`'s last flip not yet undone by a rollback of the group, or None."""
    flips: list[int] = []
    for index, entry in enumerate(entries):
        if entry.get("group") != group:
            continue
        if entry.get("action") in FLIPS:
            flips.append(index)
        elif entry.get("action") == "rollback" and flips:
            flips.pop()
    return flips[-1] if flips else None
