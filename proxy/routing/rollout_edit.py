"""A rollout plan's edits of the table: start, pause, resume, abort, a step, the end.

Each is a pure plan over (text, table, audit), like `proxy.routing.edit`'s flip: the rollout's
`state`/`step`/`since` and the resource's `canary`/`shadow`/`backend` values are rewritten in
place (`proxy.routing.yamledit`: every other byte kept), the result re-parsed (so `max_in_flight`
and every other rule hold) and checked to have changed nothing but that resource, and the change
carries an audit entry (`action`: rollout-start, -pause, -resume, -abort, -step, -done).
`apply_file` and `proxy.routing.store_edit.apply` run them under the file's lock or in the store's
compare-and-swap; a plan given `expect` (the step and since its caller judged) does nothing when
the table moved on meanwhile, so of several workers or replicas one takes a step.

What a step puts in the entry: `shadow` sets `shadow: {backend: TO}` (a canary, if any, at 0);
a percent drops the shadow and sets the canary's percent (adding `canary: {backend: TO,
percent: N, sticky: ...}` when there is none). Abort: canary 0, shadow off. Done: `backend: TO`,
canary and shadow removed (the fallback kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from proxy.clock import iso_time
from proxy.routing.edit import Author, Change, EditConflict, EditError, Entries, Planned, apply_file
from proxy.routing.model import SHADOW_STEP, Rollout, Route, RoutesError, RouteTable
from proxy.routing.parser import parse_table
from proxy.routing.yamledit import remove_key, set_value

ACTIONS = ("start", "pause", "resume", "abort")
FROM_STATES = {  # what a command may change
    "start": ("pending", "aborted", "paused"),
    "pause": ("running",),
    "resume": ("paused",),
    "abort": ("running", "paused"),
}


@dataclass(frozen=True)
class Expected:
    """The plan as its caller judged it: a write happens only if the table still says so."""

    step: int
    since: str | None


def plan_command(
    text: str, table: RouteTable, audit: Entries, *, resource: str, action: str, author: Author
) -> Planned:
    """`strangler rollout start|pause|resume|abort RESOURCE`."""
    route, plan = _plan_of(table, resource)
    if plan.state not in FROM_STATES[action]:
        allowed = " or ".join(FROM_STATES[action])
        raise EditError(
            f"cannot {action} the rollout of '{resource}': it is {plan.state}, not {allowed}"
        )
    now = iso_time()
    if action == "pause":
        new = _progress(text, resource, "paused", plan.step, plan.since)
    elif action == "abort":
        new = _progress(_back(text, route), resource, "aborted", plan.step, now)
    else:
        step = 0 if action == "start" and plan.state != "paused" else plan.step
        new = _progress(_traffic(text, route, plan, step), resource, "running", step, now)
    return _checked(new, table, route, f"rollout-{action}", author)


def plan_advance(
    text: str,
    table: RouteTable,
    audit: Entries,
    *,
    resource: str,
    expect: Expected,
    author: Author,
) -> Planned | None:
    """The autopilot's next step (after the last: the flip to `to`, state done); None when
    the plan is no longer running at the step and since its caller saw."""
    found = _running(table, resource, expect)
    if found is None:
        return None
    route, plan = found
    now = iso_time()
    if plan.step + 1 < len(plan.steps):
        step = plan.step + 1
        new = _progress(_traffic(text, route, plan, step), resource, "running", step, now)
        return _checked(new, table, route, "rollout-step", author)
    new = set_value(_without_traffic(text, route), resource, ("backend",), plan.to)
    new = _progress(new, resource, "done", plan.step, now)
    return _checked(new, table, route, "rollout-done", author)


def plan_abort(
    text: str,
    table: RouteTable,
    audit: Entries,
    *,
    resource: str,
    expect: Expected,
    author: Author,
) -> Planned | None:
    """The autopilot's abort on a failing gate (`author.reason` names it); None as above."""
    found = _running(table, resource, expect)
    if found is None:
        return None
    route, plan = found
    new = _progress(_back(text, route), resource, "aborted", plan.step, iso_time())
    return _checked(new, table, route, "rollout-abort", author)


# -- applying them to routes.yaml ----------------------------------------------------------------


def command(
    routes: Path,
    resource: str,
    action: str,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change:
    """`plan_command` on routes.yaml and its audit log."""
    author = Author(user, reason, str(routes), environ)
    change = apply_file(
        routes, partial(plan_command, resource=resource, action=action, author=author), author
    )
    if change is None:
        raise EditConflict("nothing was planned")
    return change


# -- the text ------------------------------------------------------------------------------------


def _plan_of(table: RouteTable, resource: str) -> tuple[Route, Rollout]:
    route = table.routes.get(resource)
    if route is None or route.rollout is None:
        raise EditError(f"resource '{resource}' has no rollout plan")
    return route, route.rollout


def _running(table: RouteTable, resource: str, expect: Expected) -> tuple[Route, Rollout] | None:
    route = table.routes.get(resource)
    plan = None if route is None else route.rollout
    if route is None or plan is None or plan.state != "running":
        return None
    if (plan.step, plan.since) != (expect.step, expect.since):
        return None
    return route, plan


def _progress(text: str, resource: str, state: str, step: int, since: str | None) -> str:
    text = set_value(text, resource, ("rollout", "state"), state)
    text = set_value(text, resource, ("rollout", "step"), str(step))
    return text if since is None else set_value(text, resource, ("rollout", "since"), f'"{since}"')


def _traffic(text: str, route: Route, plan: Rollout, step: int) -> str:
    """The entry's canary and shadow as step `step` of the plan wants them."""
    resource, current = route.resource, plan.steps[step]
    if current == SHADOW_STEP:
        text = set_value(text, resource, ("shadow",), f"{{backend: {plan.to}}}")
        if route.canary is not None:
            text = set_value(text, resource, ("canary", "percent"), "0")
        return text
    text = remove_key(text, resource, "shadow")
    percent = f"{current:g}"
    if route.canary is not None:
        return set_value(text, resource, ("canary", "percent"), percent)
    sticky = "" if plan.sticky is None else f', sticky: "{plan.sticky}"'
    canary = f"{{backend: {plan.to}, percent: {percent}{sticky}}}"
    return set_value(text, resource, ("canary",), canary)


def _back(text: str, route: Route) -> str:
    """Every client on the old stack again: canary at 0, shadow off."""
    text = remove_key(text, route.resource, "shadow")
    if route.canary is None:
        return text
    return set_value(text, route.resource, ("canary", "percent"), "0")


def _without_traffic(text: str, route: Route) -> str:
    return remove_key(remove_key(text, route.resource, "shadow"), route.resource, "canary")


def _checked(
    new_text: str, table: RouteTable, route: Route, action: str, author: Author
) -> Planned:
    """Re-parsed (every rule, `max_in_flight` too); nothing but `route` changed."""
    try:
        new = parse_table(new_text, author.source, author.environ)
    except RoutesError as exc:  # max_in_flight, most likely: the edit is refused, not the file
        raise EditConflict(
            f"refused, the table would not be valid: {'; '.join(exc.errors)}"
        ) from exc
    others = {name: other for name, other in table.routes.items() if name != route.resource}
    new_others = {name: other for name, other in new.routes.items() if name != route.resource}
    same = (
        others == new_others
        and new.backends == table.backends
        and new.default == table.default
        and new.max_in_flight == table.max_in_flight
        and route.resource in new.routes
    )
    if not same:
        raise EditConflict(
            f"could not edit '{route.resource}' safely; the table was left unchanged"
        )
    assert route.rollout is not None
    return new_text, author.change(route.resource, route.backend, route.rollout.to, action)
