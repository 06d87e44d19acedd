"""Flip and rollback on a fleet's store: the plans of `proxy.routing.edit` (and of a group,
`proxy.routing.group_edit`), compare-and-swapped.

Each runs its plan inside `RouteStore.edit`'s loop (again after each conflict, on what it read
then), so a flip, a rollback and a guard's rollback behave on the store exactly as on a file:
the same audit fields (plus the store revision), the same undo stack, and `rollback_if`
conditioned on the resource still being on the backend its caller saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from proxy.routing.edit import (
    Author,
    Change,
    EditConflict,
    Entries,
    Plan,
    plan_flip,
    plan_rollback,
    plan_rollback_if,
    plan_stop_canary_if,
)
from proxy.routing.group_edit import GroupChange, plan_group_flip, plan_group_rollback
from proxy.routing.group_edit import made as group_made
from proxy.routing.parser import parse_table
from proxy.routing.store import RouteStore

NO_TABLE = "the store holds no table yet: `strangler store push FILE` one first"


def author(
    store: RouteStore, user: str, reason: str = "", environ: Mapping[str, str] | None = None
) -> Author:
    """An `Author` whose errors name the store's routes key (`/strangler/routes:3: ...`)."""
    return Author(user, reason, store.routes_key, environ)


async def apply(store: RouteStore, plan: Plan, by: Author) -> Change | None:
    """Run `plan` in the store's compare-and-swap loop; text and audit entry in one transaction.

    The change (with the store revision that recorded it; a flip to where the resource already
    is comes back not `recorded`, nothing written), or None when the plan had nothing to do.
    """
    planned: list[Change | None] = [None]

    def change(text: str | None, audit: Entries) -> tuple[str | None, dict[str, Any] | None]:
        if text is None:
            raise EditConflict(f"{store.routes_key}: {NO_TABLE}")
        result = plan(text, parse_table(text, by.source, by.environ), audit)
        planned[0] = None if result is None else result[1]
        if result is None or not result[1].recorded:
            return None, None
        return result[0], result[1].to_json()

    _, entry, revision = await store.edit(change)
    made = planned[0]
    return replace(made, revision=revision) if made is not None and entry is not None else made


async def flip(store: RouteStore, resource: str, backend: str, by: Author) -> Change:
    """`plan_flip` on the store."""
    made = await apply(store, partial(plan_flip, resource=resource, backend=backend, author=by), by)
    return _made(made)


async def rollback(store: RouteStore, resource: str, by: Author) -> Change:
    """`plan_rollback` on the store and its audit log."""
    return _made(await apply(store, partial(plan_rollback, resource=resource, author=by), by))


async def rollback_if(store: RouteStore, resource: str, expected: str, by: Author) -> Change | None:
    """`plan_rollback_if` on the store: of several replicas asking at once, one rolls back."""
    plan = partial(plan_rollback_if, resource=resource, expected=expected, author=by)
    return await apply(store, plan, by)


async def stop_canary_if(
    store: RouteStore, resource: str, expected: str, main: str, by: Author
) -> Change | None:
    """`plan_stop_canary_if` on the store: of several replicas asking at once, one stops it."""
    plan = partial(plan_stop_canary_if, resource=resource, expected=expected, main=main, author=by)
    return await apply(store, plan, by)


async def flip_group(store: RouteStore, group: str, backend: str, by: Author) -> GroupChange:
    """`plan_group_flip` on the store: every member and one audit entry in one transaction."""
    return group_made(
        await apply(store, partial(plan_group_flip, group=group, backend=backend, author=by), by)
    )


async def rollback_group(store: RouteStore, group: str, by: Author) -> GroupChange:
    """`plan_group_rollback` on the store and its audit log."""
    return group_made(await apply(store, partial(plan_group_rollback, group=group, author=by), by))


def _made(change: Change | None) -> Change:
    if change is None:  # flip and rollback always plan a change
        raise EditConflict("nothing was planned")
    return change
