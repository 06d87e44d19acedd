"""`strangler pin`: add a pinned client to a resource, as flips are made.

`plan_pin` is pure, like `proxy.routing.edit`'s plans: from the routes.yaml text and its table
it appends one entry to the resource's `clients:` (`proxy.routing.yamledit.add_list_item`: every
other byte kept; a short entry becomes long; an unlisted resource is listed on the backend it
already went to, `RouteTable.backend_for`), re-parses the text, and checks that nothing changed
but that one pin. `pin` applies it to routes.yaml under the file's lock, written atomically,
with an audit line:

    {"time": "...", "user": "ana", "resource": "bookings", "from": "drf", "to": "legacy",
     "reason": "broken client (pin header:X-Application-Key sha256:2a97516c…)", "action": "pin"}

A header or cookie value is written only as its SHA-256 (`value_sha256`); a client_ip network
in clear. Pinning a client already pinned to that backend changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

from proxy.routing.clients import client_network, pin_identity, value_digest
from proxy.routing.edit import Author, Change, EditConflict, EditError, Entries, Planned, apply_file
from proxy.routing.model import OTHER_RESOURCE, Pin, Route, RouteTable
from proxy.routing.parser import parse_table
from proxy.routing.rules import RESOURCE_RE, parse_sticky
from proxy.routing.yamledit import add_list_item, set_backend

ACTION = "pin"


def secret_pin(match: str, value: str, backend: str) -> Pin:
    """The pin `strangler pin` writes: header and cookie values as their digest only.

    >>> secret_pin("header:X-Key", "demo", "legacy").value_sha256[:8]
    '2a97516c'
    >>> secret_pin("client_ip", "10.0.0.0/8", "legacy").value
    '10.0.0.0/8'
    """
    kind = (parse_sticky(match) or ("", ""))[0]
    if not kind:
        raise EditError(f'cannot pin by {match!r}: "header:NAME", "cookie:NAME" or "client_ip"')
    if kind == "client_ip":
        if client_network(value) is None:
            raise EditError(f"{value!r} is not an IP address or a CIDR network (no host bits set)")
        return Pin(match, backend, value.strip())
    if not value:
        raise EditError("the value to pin is empty")
    return Pin(match, backend, value_sha256=value_digest(value))


def describe(pin: Pin) -> str:
    """`header:X-Key sha256:2a97516c…` or `client_ip 10.0.0.0/8`."""
    if pin.value_sha256 is not None:
        return f"{pin.match} sha256:{pin.value_sha256[:8]}…"
    return f"{pin.match} {pin.value}"


def pin_text(pin: Pin) -> str:
    """The pin as one flow mapping of routes.yaml.

    >>> pin_text(Pin("client_ip", "legacy", "10.0.0.0/8"))
    '{match: client_ip, value: "10.0.0.0/8", backend: legacy}'
    """
    key, value = (
        ("value", pin.value) if pin.value_sha256 is None else ("value_sha256", pin.value_sha256)
    )
    match = pin.match if pin.match == "client_ip" else json.dumps(pin.match)
    return f"{{match: {match}, {key}: {json.dumps(value)}, backend: {pin.backend}}}"


def plan_pin(
    text: str, table: RouteTable, audit: Entries, *, resource: str, pin: Pin, author: Author
) -> Planned:
    """Append `pin` to the `clients:` of `resource`; already pinned there: not `recorded`."""
    if not RESOURCE_RE.match(resource) or resource == OTHER_RESOURCE:
        raise EditError(f"invalid resource name '{resource}'")
    if pin.backend not in table.backends:
        known = ", ".join(sorted(table.backends))
        raise EditError(f"unknown backend '{pin.backend}' (backends: {known})")
    route = table.routes.get(resource) or Route(resource, table.backend_for(resource))
    done = f"{ACTION} {describe(pin)}"
    reason = f"{author.reason} ({done})" if author.reason else done
    change = replace(author, reason=reason).change(resource, route.backend, pin.backend, ACTION)
    same = [old for old in route.clients if pin_identity(old) == pin_identity(pin)]
    if same and same[0].backend == pin.backend:
        return None, replace(change, recorded=False)
    if same:
        raise EditError(
            f"'{resource}' already pins that client to {same[0].backend}: edit routes.yaml"
        )
    listed = text if resource in table.routes else set_backend(text, resource, route.backend)
    new_text = add_list_item(listed, resource, "clients", pin_text(pin))
    new = parse_table(new_text, author.source, author.environ)
    _check(table, new, replace(route, clients=(*route.clients, pin)))
    return new_text, change


def _check(old: RouteTable, new: RouteTable, route: Route) -> None:
    """The edit must have given the resource its new pin and changed nothing else."""
    others = {name: kept for name, kept in old.routes.items() if name != route.resource}
    same = (
        new.routes.get(route.resource) == route
        and {name: kept for name, kept in new.routes.items() if name != route.resource} == others
        and (new.backends, new.default) == (old.backends, old.default)
    )
    if not same:
        raise EditConflict(f"could not edit '{route.resource}' safely; the file was left unchanged")


def pin(
    routes: Path,
    resource: str,
    client: Pin,
    *,
    user: str,
    reason: str = "",
    environ: Mapping[str, str] | None = None,
) -> Change:
    """`plan_pin` on routes.yaml, under its lock, with its audit line."""
    author = Author(user, reason, str(routes), environ)
    plan = partial(plan_pin, resource=resource, pin=client, author=author)
    change = apply_file(routes, plan, author, read_log=False)
    if change is None:  # a pin always plans a change
        raise EditConflict("nothing was planned")
    return change
