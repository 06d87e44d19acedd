"""Flip and rollback: rewrite one value of routes.yaml atomically, and audit every change.

The edit is textual: the YAML node marks locate the one scalar to replace (the short form
`bookings: drf`, or the `backend:` of a long-form entry), so every other byte of the file —
comments, order, quoting, blank lines — is kept. The result is validated with `parse_table`
before it replaces the file (temp file in the same directory, fsync, rename, fsync of the
directory). Concurrent edits serialize on `fcntl.flock` of a lock file beside routes.yaml.

A symlinked routes.yaml (a Kubernetes ConfigMap mount: `routes.yaml -> ..data/routes.yaml`) is
refused: kubelet would overwrite any edit on its next sync, so the change belongs in the
ConfigMap's source.

Each change appends one JSON line to `<stem>.audit.jsonl` beside the file
(`routes.yaml` -> `routes.audit.jsonl`):
`{"time": "2026-11-28T10:00:00.000Z", "user": "ana", "resource": "bookings", "from": "legacy",
  "to": "drf", "reason": "...", "action": "flip"}`.

Rollback semantics: a resource's flips form an undo stack. Each rollback undoes the most recent
flip not yet undone, returning the resource to that flip's `from`; with no flip left to undo it
goes to `default`. So flip A->B, flip B->C, rollback (-> B), rollback (-> A), rollback (-> default).
Hand edits of the file are not in the audit log and are not undone.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy.clock import iso_time
from proxy.routing.model import OTHER_RESOURCE, RouteTable
from proxy.routing.nodes import compose_nodes
from proxy.routing.parser import parse_table
from proxy.routing.rules import RESOURCE_RE


class EditError(ValueError):
    """The change asked for is not possible (unknown backend, bad resource name)."""


class EditConflict(EditError):
    """The file cannot be edited as it stands (a symlink, unwritable, an unexpected edit)."""


@dataclass(frozen=True)
class Change:
    time: str
    user: str
    resource: str
    from_backend: str
    to_backend: str
    reason: str
    action: str  # "flip" | "rollback"
    recorded: bool = True  # False when a flip found the resource already there

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


def audit_path(routes: Path) -> Path:
    return routes.with_name(f"{routes.stem}.audit.jsonl")


def lock_path(routes: Path) -> Path:
    return routes.with_name(f".{routes.name}.lock")


def _check_name(resource: str) -> None:
    if not RESOURCE_RE.match(resource) or resource == OTHER_RESOURCE:
        raise EditError(f"invalid resource name '{resource}'")


def flip(
    routes: Path,
    resource: str,
    backend: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change:
    """Send `resource` to `backend`; adds the resource under `resources:` if it is not listed."""
    _check_name(resource)
    with _locked(routes):
        text, table = _current(routes, environ)
        if backend not in table.backends:
            known = ", ".join(sorted(table.backends))
            raise EditError(f"unknown backend '{backend}' (backends: {known})")
        current = table.backend_for(resource)
        if resource in table.routes and current == backend:
            now = iso_time()
            return Change(now, user, resource, current, backend, reason, "flip", recorded=False)
        change = Change(iso_time(), user, resource, current, backend, reason, "flip")
        _apply(routes, text, table, change, environ)
        return change


def rollback(
    routes: Path,
    resource: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change:
    """Undo the resource's last flip not yet undone; with none, send it to `default`."""
    _check_name(resource)
    with _locked(routes):
        text, table = _current(routes, environ)
        target = rollback_target(read_audit(audit_path(routes)), resource) or table.default
        if target not in table.backends:
            raise EditError(f"cannot roll back '{resource}' to '{target}': no such backend now")
        current = table.backend_for(resource)
        change = Change(iso_time(), user, resource, current, target, reason, "rollback")
        _apply(routes, text, table, change, environ)
        return change


def rollback_if(
    routes: Path,
    resource: str,
    expected: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change | None:
    """`rollback`, only if `resource` is on `expected` now and the rollback moves it; else None.

    The check and the change happen under the lock: of several processes racing to roll the
    same resource back (the guard in each worker), one does it and the others get None.
    """
    _check_name(resource)
    with _locked(routes):
        text, table = _current(routes, environ)
        target = rollback_target(read_audit(audit_path(routes)), resource) or table.default
        current = table.backend_for(resource)
        if current != expected or target == current or target not in table.backends:
            return None
        change = Change(iso_time(), user, resource, current, target, reason, "rollback")
        _apply(routes, text, table, change, environ)
        return change


def rollback_target(entries: Iterable[Mapping[str, Any]], resource: str) -> str | None:
    """The backend a rollback of `resource` returns to, from the audit entries (oldest first)."""
    undo: list[str] = []
    for entry in entries:
        if entry.get("resource") != resource:
            continue
        if entry.get("action") == "flip" and isinstance(entry.get("from"), str):
            undo.append(entry["from"])
        elif entry.get("action") == "rollback" and undo:
            undo.pop()
    return undo[-1] if undo else None


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


# -- the text edit ---------------------------------------------------------------------------


def set_backend(text: str, resource: str, backend: str) -> str:
    """`text` with `resource` sent to `backend`, every other byte unchanged (or one entry added).

    >>> set_backend("resources:\\n  bookings: legacy  # note\\n", "bookings", "drf")
    'resources:\\n  bookings: drf  # note\\n'
    """
    root = compose_nodes(text)
    if not isinstance(root, MappingNode):
        raise EditConflict("routes file has no top-level mapping")
    found = _lookup(root, "resources")
    if found is None:
        return _with_newline(text) + f"resources:\n  {resource}: {backend}\n"
    key, resources = found
    if isinstance(resources, ScalarNode):
        return _fill_empty(text, key, resources, resource, backend)
    if not isinstance(resources, MappingNode):
        raise EditConflict("'resources' is not a mapping")
    entry = _lookup(resources, resource)
    if entry is None:
        return _add_entry(text, resources, resource, backend)
    value = entry[1]
    if isinstance(value, MappingNode):
        inner = _lookup(value, "backend")
        if inner is None:
            raise EditConflict(f"resource '{resource}' has no 'backend' key")
        value = inner[1]
    if not isinstance(value, ScalarNode):
        raise EditConflict(f"resource '{resource}' has no backend value to replace")
    return _replace(text, value, _scalar_text(value, backend))


def _lookup(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    for key_node, value in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def _replace(text: str, node: Node, new: str) -> str:
    return text[: node.start_mark.index] + new + text[node.end_mark.index :]


def _scalar_text(node: ScalarNode, value: str) -> str:
    """Keep the quoting style of the value being replaced."""
    quote = node.style if node.style in ("'", '"') else ""
    return f"{quote}{value}{quote}"


def _fill_empty(text: str, key: Node, node: ScalarNode, resource: str, backend: str) -> str:
    """`resources:` with no value (or `~`): give it its first entry."""
    if node.start_mark.index != node.end_mark.index:
        return _replace(text, node, f"{{{resource}: {backend}}}")
    indent = " " * (key.start_mark.column + 2)
    return _insert_after_line(text, key.start_mark.line, f"{indent}{resource}: {backend}\n")


def _add_entry(text: str, resources: MappingNode, resource: str, backend: str) -> str:
    if resources.flow_style or not resources.value:
        if not resources.value:
            return _replace(text, resources, f"{{{resource}: {backend}}}")
        end = resources.value[-1][1].end_mark.index
        return text[:end] + f", {resource}: {backend}" + text[end:]
    indent = " " * resources.value[0][0].start_mark.column
    last = _last_line(resources)
    return _insert_after_line(text, last, f"{indent}{resource}: {backend}\n")


def _last_line(node: Node) -> int:
    """0-based index of the last line holding part of `node`."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1])
    end = node.end_mark
    if isinstance(node, ScalarNode) and node.style in ("|", ">") and end.column == 0:
        return int(end.line) - 1
    return int(end.line)


def _insert_after_line(text: str, line: int, new_line: str) -> str:
    lines = text.splitlines(keepends=True)
    if line < len(lines) and not lines[line].endswith(("\n", "\r")):
        lines[line] += "\n"
    lines.insert(line + 1, new_line)
    return "".join(lines)


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# -- the file --------------------------------------------------------------------------------


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


def _apply(
    routes: Path,
    text: str,
    table: RouteTable,
    change: Change,
    environ: Mapping[str, str] | None,
) -> None:
    unlisted_default = change.resource not in table.routes and change.to_backend == table.default
    if not (change.action == "rollback" and unlisted_default):
        new_text = set_backend(text, change.resource, change.to_backend)
        _check(
            table, parse_table(new_text, str(routes), environ), change.resource, change.to_backend
        )
        write_atomically(routes, new_text)
    _append_audit(audit_path(routes), change)


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
