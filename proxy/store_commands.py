"""The fleet's table from the command line: `strangler store pull|push`, and `flip`/`rollback`
(of a resource, or of a group with `--group`) with `--store URL` (or STRANGLER_STORE).

`flip` and `rollback` run the plans of `proxy.routing.edit` in the store's compare-and-swap loop
(`proxy.routing.store_edit`): re-applied on a conflict, text and audit entry in one transaction.

`store pull` prints the stored text byte for byte (`strangler store pull > routes.yaml`) and its
revision on stderr, and records what it pulled (store, revision, sha256 of the text) in
`$XDG_STATE_HOME/strangler/store-pulls.json` (default `~/.local/state/...`).

`store push FILE` validates FILE (`file:line` errors, nothing written) and replaces the table,
audited (`"action": "push"`). It never overwrites a change its caller has not seen:
- `--expect-revision N`: written only if the table is still at revision N (what `pull` printed);
- otherwise the base is the last `pull` (or `push`) of this store recorded in the state file:
  written only if the stored text is still the one pulled (same revision, or same sha256: a flip
  and its rollback since lose nothing) or already equal to FILE; the write itself is conditioned
  on the revision just checked, so a change landing in between refuses it too;
- no base at all: refused. `--force` writes whatever the store holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from proxy.clock import iso_time
from proxy.routing.edit import Change, write_atomically
from proxy.routing.group_edit import GroupChange, describe
from proxy.routing.model import RoutesError
from proxy.routing.parser import parse_table
from proxy.settings import Settings

if TYPE_CHECKING:  # imported when used: aiohttp takes half a second to import
    from proxy.routing.store import RouteStore, TableText

PROG = "strangler"
T = TypeVar("T")


def store_url(args: argparse.Namespace) -> str | None:
    """`--store`, else STRANGLER_STORE, else None (the file)."""
    return Settings.from_env(os.environ, store=getattr(args, "store", None)).store


class Exit(Exception):
    """The command failed; its message is printed, `code` is the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def run(command: str, url: str, work: Callable[[RouteStore], Awaitable[T]]) -> T:
    """`work` on the store at `url`; a bad URL or an unreachable store: the message, `Exit`."""
    import asyncio  # here, as RouteStore: a flip of the file imports this module, runs no loop

    from proxy.routing.store import RouteStore, StoreConflict, StoreError, parse_store_url

    try:
        parsed = parse_store_url(url)
    except ValueError as exc:
        print(f"{PROG} {command}: {exc}", file=sys.stderr)
        raise Exit(2) from exc

    async def opened() -> T:
        async with RouteStore(parsed) as store:
            return await work(store)

    try:
        return asyncio.run(opened())
    except StoreConflict as exc:
        print(f"{PROG} {command}: refused: {exc}", file=sys.stderr)
        raise Exit(1) from exc
    except StoreError as exc:
        print(f"{PROG} {command}: the store is unreachable: {exc}", file=sys.stderr)
        raise Exit(1) from exc


def exits(command: Callable[..., int]) -> Callable[..., int]:
    """`command`'s status, or the `Exit` code it stopped with."""

    def wrapped(*args: Any, **kwargs: Any) -> int:
        try:
            return command(*args, **kwargs)
        except Exit as exc:
            return exc.code

    return wrapped


@exits
def flip(url: str, resource: str, backend: str, *, user: str, reason: str) -> int:
    from proxy.routing import store_edit

    async def work(store: RouteStore) -> Change:
        by = store_edit.author(store, user, reason)
        return await store_edit.flip(store, resource, backend, by)

    change = run("flip", url, work)
    if not change.recorded:
        print(f"{change.resource}: already on {change.to_backend}, nothing changed")
    else:
        print(f"{change.resource}: {change.from_backend} -> {change.to_backend}{at(change)}")
    if change.paused:
        print(f"{change.resource}: its running rollout plan is paused")
    return 0


@exits
def rollback(url: str, resource: str, *, user: str, reason: str) -> int:
    from proxy.routing import store_edit

    async def work(store: RouteStore) -> Change:
        return await store_edit.rollback(store, resource, store_edit.author(store, user, reason))

    change = run("rollback", url, work)
    print(f"{change.resource}: {change.from_backend} -> {change.to_backend} (rollback){at(change)}")
    return 0


@exits
def flip_group(url: str, group: str, backend: str, *, user: str, reason: str) -> int:
    """`flip --group GROUP BACKEND --store URL`: every member in one transaction."""
    from proxy.routing import store_edit

    async def work(store: RouteStore) -> GroupChange:
        return await store_edit.flip_group(
            store, group, backend, store_edit.author(store, user, reason)
        )

    return print_group(run("flip", url, work))


@exits
def rollback_group(url: str, group: str, *, user: str, reason: str) -> int:
    """`rollback --group GROUP --store URL`."""
    from proxy.routing import store_edit

    async def work(store: RouteStore) -> GroupChange:
        return await store_edit.rollback_group(store, group, store_edit.author(store, user, reason))

    return print_group(run("rollback", url, work))


def print_group(change: GroupChange) -> int:
    head, *rest = describe(change)
    print("\n".join([head.removesuffix(":") + at(change) + ":", *rest]))
    return 0


@exits
def rollout(url: str, resource: str, action: str, *, user: str, reason: str) -> int:
    """`strangler rollout ACTION RESOURCE --store URL` (`proxy.routing.rollout_edit`)."""
    from functools import partial

    from proxy.routing import rollout_edit, store_edit

    async def work(store: RouteStore) -> Change | None:
        by = store_edit.author(store, user, reason)
        plan = partial(rollout_edit.plan_command, resource=resource, action=action, author=by)
        return await store_edit.apply(store, plan, by)

    change = run("rollout", url, work)
    assert change is not None  # a command always plans a change
    print(
        f"{resource}: rollout {action} ({change.from_backend} -> {change.to_backend}){at(change)}"
    )
    return 0


def at(change: Change) -> str:
    return f" (revision {change.revision})" if change.revision else ""


@exits
def store_command(args: argparse.Namespace, user: str) -> int:
    url = store_url(args)
    if url is None:
        print(f"{PROG} store: no store given (--store URL or STRANGLER_STORE)", file=sys.stderr)
        return 2
    if args.store_command == "pull":
        return pull(url)
    return push(url, args.file, user=user, reason=args.reason, expect=args.expect_revision,
                force=args.force)  # fmt: skip


def pull(url: str) -> int:
    table = run("store pull", url, lambda store: store.read())
    if table.text is None:
        print(f"{PROG} store pull: the store holds no table yet (store push FILE)", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(table.text.encode("utf-8"))
    sys.stdout.flush()
    print(f"{PROG} store pull: revision {table.revision}", file=sys.stderr)
    remember(url, table.revision, table.text)
    return 0


def push(url: str, path: Path, *, user: str, reason: str, expect: int | None, force: bool) -> int:
    text = read_valid(path)
    base = None if force or expect is not None else recalled(url)
    if not force and expect is None and base is None:
        print(
            f"{PROG} store push: refused: no base to check against: `{PROG} store pull` first, "
            "or give --expect-revision N (or --force)",
            file=sys.stderr,
        )
        return 1
    entry = {"time": iso_time(), "user": user, "resource": "", "from": "", "to": "",
             "reason": reason, "action": "push", "sha256": sha256(text)}  # fmt: skip

    async def work(store: RouteStore) -> int:
        expected = None if force else expect
        if base is not None:
            expected = checked(await store.read(), base, text)
        return await store.push(text, entry, expected_revision=expected)

    revision = run("store push", url, work)
    remember(url, revision, text)
    print(f"pushed {path} (revision {revision})")
    return 0


def checked(now: TableText, base: Mapping[str, Any], text: str) -> int:
    """The revision to condition the push on, if the stored table is the base the caller
    pulled (or already FILE); else StoreConflict."""
    same = now.revision == base.get("revision") or sha256(now.text or "") == base.get("sha256")
    if same or now.text == text:
        return now.revision
    from proxy.routing.store import StoreConflict

    raise StoreConflict(
        f"the table changed since you pulled revision {base.get('revision')} (it is at revision "
        f"{now.revision} now): pull it again and redo your edit, or --force"
    )


def read_valid(path: Path) -> str:
    """FILE's text, if it is a valid table; else RoutesError (`file:line: message`)."""
    limit = Settings().max_routes_bytes
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RoutesError((f"{path}: cannot read: {exc.strerror or exc}",)) from exc
    if len(data) > limit:
        raise RoutesError((f"{path}:1: file is over the {limit}-byte limit",))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RoutesError((f"{path}:1: not UTF-8 ({exc.reason})",)) from exc
    parse_table(text, str(path), {})
    return text


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- what was pulled, per store ----------------------------------------------------------------


def pulls_path(environ: Mapping[str, str] = os.environ) -> Path:
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "strangler" / "store-pulls.json"


def recalled(url: str) -> dict[str, Any] | None:
    try:
        record = json.loads(pulls_path().read_text()).get(key(url))
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def remember(url: str, revision: int, text: str) -> None:
    path = pulls_path()
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        records = {}
    if not isinstance(records, dict):
        records = {}
    records[key(url)] = {"revision": revision, "sha256": sha256(text), "at": iso_time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(records, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        print(f"{PROG} store: cannot record the pull in {path}: {exc}", file=sys.stderr)


def key(url: str) -> str:
    from proxy.routing.store import parse_store_url

    parsed = parse_store_url(url)
    return ",".join(sorted(parsed.endpoints)) + parsed.prefix
