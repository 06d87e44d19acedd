"""Flip and rollback: one-line edits of the table, planned once, applied to a file or a store.

The plans (`plan_flip`, `plan_rollback`, `plan_rollback_if`) are pure: from the routes.yaml
text, its parsed table and the audit entries (oldest first) they compute the `Change` and the
new text (`proxy.routing.yamledit`: every other byte kept), validated with `parse_table`. Two
places apply them:

- routes.yaml (`flip`, `rollback`, `rollback_if`): under `fcntl.flock` of a lock file beside it,
  the new text replaces the file atomically (temp file in the same directory, fsync, rename,
  fsync of the directory), and each change appends one JSON line to `<stem>.audit.jsonl`
  (`routes.yaml` -> `routes.audit.jsonl`):
  `{"time": "2026-11-28T10:00:00.000Z", "user": "ana", "resource": "bookings", "from": "legacy",
    "to": "drf", "reason": "...", "action": "flip"}`.
  A symlinked routes.yaml (a Kubernetes ConfigMap mount) is refused: kubelet would overwrite
  any edit on its next sync, so the change belongs in the ConfigMap's source.
- a fleet's store (`proxy.routing.store_edit`): the plan runs inside `RouteStore.edit`'s
  compare-and-swap loop, again after each conflict, and the text and its audit entry (the same
  fields, plus the store revision) are written in one transaction.

Rollback semantics: a resource's flips form an undo stack. Each rollback undoes the most recent
flip not yet undone, returning the resource to that flip's `from`; with no flip left to undo it
goes to `default`. So flip A->B, flip B->C, rollback (-> B), rollback (-> A), rollback (-> default).
A group's flip counts as a flip of each member it moved (`proxy.routing.audit`,
`proxy.routing.group_edit`). Hand edits of the table are not in the audit log and are not undone.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from proxy.clock import iso_time
from proxy.routing.audit import read_audit as read_audit
from proxy.routing.audit import rollback_target as rollback_target
from proxy.routing.model import OTHER_RESOURCE, RouteTable
from proxy.routing.parser import parse_table
from proxy.routing.rules import RESOURCE_RE
from proxy.routing.yamledit import EditConflict as EditConflict
from proxy.routing.yamledit import EditError as EditError
from proxy.routing.yamledit import set_backend as set_backend
from proxy.routing.yamledit import set_canary_percent, set_value

Entries = list[dict[str, Any]]


@dataclass(frozen=True)
class Change:
    time: str
    user: str
    resource: str
    from_backend: str
    to_backend: str
    reason: str
    action: str  # "flip" | "rollback" | "stop_canary"
    recorded: bool = True  # False when a flip found the resource already there
    paused: bool = False  # a flip that paused the resource's running rollout plan
    revision: int = 0  # the store revision that recorded it (0: a change of a file)

    def to_json(self) -> dict[str, str]:
        return {
            "time": self.time,
            "user": self.user,
            "resource": self.resource,
            "from": self.from_backend,
            "to": self.to_backend,
            "reason": self.reason,
            "action": self.action,
        }


Planned = tuple[str | None, Change]  # (the new text, None when it stays as it is; the change)
Plan = Callable[[str, RouteTable, Entries], Planned | None]  # text, its table, audit -> plan


def audit_path(routes: Path) -> Path:
    return routes.with_name(f"{routes.stem}.audit.jsonl")


def lock_path(routes: Path) -> Path:
    return routes.with_name(f".{routes.name}.lock")


def _check_name(resource: str) -> None:
    if not RESOURCE_RE.match(resource) or resource == OTHER_RESOURCE:
        raise EditError(f"invalid resource name '{resource}'")


# -- the plans: pure -------------------------------------------------------------------------


@dataclass(frozen=True)
class Author:
    """Who makes a change and why; `source` and `environ` as `parse_table` takes them."""

    user: str
    reason: str = ""
    source: str = "routes.yaml"  # the name `file:line` errors give the text
    environ: Mapping[str, str] | None = None

    def change(self, resource: str, old: str, new: str, action: str) -> Change:
        return Change(iso_time(), self.user, resource, old, new, self.reason, action)


def plan_flip(
    text: str, table: RouteTable, audit: Entries, *, resource: str, backend: str, author: Author
) -> Planned:
    """Send `resource` to `backend`, adding it under `resources:` if it is not listed. Already
    there: no new text, and a change that is not `recorded`."""
    _check_name(resource)
    if backend not in table.backends:
        known = ", ".join(sorted(table.backends))
        raise EditError(f"unknown backend '{backend}' (backends: {known})")
    current = table.backend_for(resource)
    change = author.change(resource, current, backend, "flip")
    if resource in table.routes and current == backend:
        return None, replace(change, recorded=False)
    new_text = _edited(text, table, change, author)
    plan = table.routes[resource].rollout if resource in table.routes else None
    if new_text is not None and plan is not None and plan.state == "running":
        new_text = set_value(new_text, resource, ("rollout", "state"), "paused")  # taken over
        parse_table(new_text, author.source, author.environ)
        change = replace(change, paused=True)
    return new_text, change


def plan_rollback(
    text: str, table: RouteTable, audit: Entries, *, resource: str, author: Author
) -> Planned:
    """Undo the resource's last flip not yet undone; with none, send it to `default`."""
    _check_name(resource)
    target = rollback_target(audit, resource) or table.default
    if target not in table.backends:
        raise EditError(f"cannot roll back '{resource}' to '{target}': no such backend now")
    change = author.change(resource, table.backend_for(resource), target, "rollback")
    return _edited(text, table, change, author), change


def plan_rollback_if(
    text: str, table: RouteTable, audit: Entries, *, resource: str, expected: str, author: Author
) -> Planned | None:
    """`plan_rollback`, only if `resource` is on `expected` and the rollback moves it; else None.

    Applied under the file's lock or inside the store's compare-and-swap, so of several
    processes racing to roll the same resource back (the guard of each worker or replica), one
    does it and the others get None.
    """
    _check_name(resource)
    target = rollback_target(audit, resource) or table.default
    current = table.backend_for(resource)
    if current != expected or target == current or target not in table.backends:
        return None
    return plan_rollback(text, table, audit, resource=resource, author=author)


def plan_stop_canary_if(
    text: str,
    table: RouteTable,
    audit: Entries,
    *,
    resource: str,
    expected: str,
    main: str,
    author: Author,
) -> Planned | None:
    """Set the canary percent of `resource` to 0 (a guard's `stop_canary`), only if its canary
    still sends a share to `expected` and its backend is still `main`; else None.

    Like `plan_rollback_if`, applied under the file's lock or in the store's compare-and-swap,
    so of several processes tripping at once one stops the canary and writes the audit entry.
    """
    _check_name(resource)
    route = table.routes.get(resource)
    canary = None if route is None else route.canary
    if route is None or canary is None or canary.percent <= 0:
        return None
    if (canary.backend, route.backend) != (expected, main):
        return None
    reason = f"{author.reason} (canary {canary.percent:g}% -> 0%)"
    change = replace(author, reason=reason).change(resource, expected, main, "stop_canary")
    new_text = set_canary_percent(text, resource, 0)
    new = parse_table(new_text, author.source, author.environ)
    _check(table, new, resource, main)
    if new.routes.get(resource) != replace(route, canary=replace(canary, percent=0.0)):
        raise EditConflict(f"could not edit '{resource}' safely; the file was left unchanged")
    return new_text, change


def _edited(text: str, table: RouteTable, change: Change, author: Author) -> str | None:
    """The text with `change` made and checked; None for a rollback of an unlisted resource to
    where it already goes (`default`; nothing to edit: the audit entry alone records it)."""
    unlisted_default = change.resource not in table.routes and change.to_backend == table.default
    if change.action == "rollback" and unlisted_default and change.from_backend == table.default:
        return None
    new_text = set_backend(text, change.resource, change.to_backend)
    new = parse_table(new_text, author.source, author.environ)
    _check(table, new, change.resource, change.to_backend)
    return new_text


def _check(old: RouteTable, new: RouteTable, resource: str, backend: str) -> None:
    """The edit must have moved `resource` to `backend` and changed nothing else."""
    others_old = {name: route for name, route in old.routes.items() if name != resource}
    others_new = {name: route for name, route in new.routes.items() if name != resource}
    same = (
        new.backend_for(resource) == backend
        and others_old == others_new
        and old.backends == new.backends
        and old.default == new.default
    )
    if not same:
        raise EditConflict(f"could not edit '{resource}' safely; the file was left unchanged")


# -- routes.yaml -----------------------------------------------------------------------------


def flip(
    routes: Path,
    resource: str,
    backend: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change:
    """`plan_flip` on routes.yaml."""
    _check_name(resource)
    author = Author(user, reason, str(routes), environ)
    plan = partial(plan_flip, resource=resource, backend=backend, author=author)
    return _made(_on_file(routes, plan, author, read_log=False))


def rollback(
    routes: Path,
    resource: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change:
    """`plan_rollback` on routes.yaml and its audit log."""
    _check_name(resource)
    author = Author(user, reason, str(routes), environ)
    return _made(_on_file(routes, partial(plan_rollback, resource=resource, author=author), author))


def rollback_if(
    routes: Path,
    resource: str,
    expected: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change | None:
    """`plan_rollback_if` on routes.yaml and its audit log."""
    _check_name(resource)
    author = Author(user, reason, str(routes), environ)
    plan = partial(plan_rollback_if, resource=resource, expected=expected, author=author)
    return _on_file(routes, plan, author)


def stop_canary_if(
    routes: Path,
    resource: str,
    expected: str,
    main: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change | None:
    """`plan_stop_canary_if` on routes.yaml and its audit log."""
    _check_name(resource)
    author = Author(user, reason, str(routes), environ)
    plan = partial(
        plan_stop_canary_if, resource=resource, expected=expected, main=main, author=author
    )
    return _on_file(routes, plan, author)


def _on_file(routes: Path, plan: Plan, author: Author, *, read_log: bool = True) -> Change | None:
    """Run `plan` under the lock; write its text and its audit line. The change, or None."""
    with _locked(routes):
        text, table = _current(routes, author.environ)
        audit = list(read_audit(audit_path(routes))) if read_log else []
        planned = plan(text, table, audit)
        if planned is None:
            return None
        new_text, change = planned
        if new_text is not None:
            write_atomically(routes, new_text)
        if change.recorded:
            _append_audit(audit_path(routes), change)
        return change


apply_file = _on_file  # the plans of other modules (proxy.routing.rollout_edit) on routes.yaml


def _made(change: Change | None) -> Change:
    if change is None:  # flip and rollback always plan a change
        raise EditConflict("nothing was planned")
    return change


@contextmanager
def _locked(routes: Path) -> Iterator[None]:
    path = lock_path(routes)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EditConflict(f"cannot lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _current(routes: Path, environ: Mapping[str, str] | None) -> tuple[str, RouteTable]:
    if routes.is_symlink():
        raise EditConflict(
            f"{routes} is a symbolic link (a Kubernetes ConfigMap mount?); it would be "
            "overwritten on the next sync: change the ConfigMap's source instead"
        )
    try:
        text = routes.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EditConflict(f"cannot read {routes}: {exc}") from exc
    return text, parse_table(text, str(routes), environ)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by a fully written, fsynced temp file of the same directory."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _append_audit(path: Path, change: Change) -> None:
    line = json.dumps(change.to_json(), ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
