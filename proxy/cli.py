"""`strangler` (also `python -m proxy`): serve, validate, flip, rollback, status, diffs, ready,
store, rollout, init.

Exit codes: 0 done, 1 failed (one clear line per problem on stderr), 2 bad usage.

The command line itself is `proxy.arguments`. Each command imports what it runs on when it runs,
not at the top of this module, so that no command starts slower for another's modules: `status`
loads no YAML, `validate` neither an event loop (the store's) nor http.client (the admin API's),
and only `serve` the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from proxy.arguments import PROG, build_parser, check
from proxy.ready_text import percent, pinned_column, print_groups, print_ready, progress_line
from proxy.settings import Settings, SettingsError, command_user


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check(args)  # flip/rollback: RESOURCE, or --group GROUP
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    command: str = args.command
    try:
        return int(COMMANDS[command](args))
    except ValueError as exc:
        lines = refusal(command, exc)
        if lines is None:
            raise
        for line in lines:
            print(line, file=sys.stderr)
        return 1


def refusal(command: str, exc: ValueError) -> list[str] | None:
    """What a command refused prints: a table's errors (each already `file:line: message`), or
    why an edit or a setting cannot be; None for any other error."""
    # Imported here: a command that raised one of these has them loaded already, and the
    # commands that never read the table (status, ready, diffs) are spared YAML.
    from proxy.routing.model import RoutesError
    from proxy.routing.yamledit import EditError

    if isinstance(exc, RoutesError):
        return list(exc.errors)
    if isinstance(exc, EditError | SettingsError):
        return [f"{PROG} {command}: {exc}"]
    return None


def serve(args: argparse.Namespace) -> int:
    from proxy import server  # the data plane, imported only when serving

    settings = Settings.from_env(
        os.environ,
        routes=args.routes,
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        workers=args.workers,
        store=args.store,
        store_cache=args.store_cache,
    )
    return server.serve(settings)


def validate(args: argparse.Namespace) -> int:
    from proxy.routing.parser import load_table

    load_table(args.routes, max_bytes=Settings.from_env(os.environ).max_routes_bytes)
    print("OK")
    return 0


def current_user(args: argparse.Namespace) -> str:
    """`--user`, else STRANGLER_USER, the login name, git's user.email (proxy.settings)."""
    return command_user(getattr(args, "user", None))


def flip(args: argparse.Namespace) -> int:
    from proxy import group_commands, store_commands
    from proxy.routing import edit

    url, user, reason = store_commands.store_url(args), current_user(args), args.reason
    if args.group is not None and url is not None:
        return store_commands.flip_group(url, args.group, args.backend, user=user, reason=reason)
    if args.group is not None:
        return group_commands.flip(args, user)
    if url is not None:
        return store_commands.flip(url, args.resource, args.backend, user=user, reason=reason)
    change = edit.flip(args.routes, args.resource, args.backend, user=user, reason=reason)
    if not change.recorded:
        print(f"{change.resource}: already on {change.to_backend}, nothing changed")
    else:
        print(f"{change.resource}: {change.from_backend} -> {change.to_backend}")
    if change.paused:
        print(f"{change.resource}: its running rollout plan is paused (rollout resume to go on)")
    return 0


def rollout(args: argparse.Namespace) -> int:
    from proxy import rollout_commands, store_commands

    url = store_commands.store_url(args)
    if url is not None:
        user, reason = current_user(args), args.reason
        return store_commands.rollout(url, args.resource, args.action, user=user, reason=reason)
    return rollout_commands.rollout(args, current_user(args))


def rollback(args: argparse.Namespace) -> int:
    from proxy import group_commands, store_commands
    from proxy.routing import edit

    url, user, reason = store_commands.store_url(args), current_user(args), args.reason
    if args.group is not None and url is not None:
        return store_commands.rollback_group(url, args.group, user=user, reason=reason)
    if args.group is not None:
        return group_commands.rollback(args, user)
    if url is not None:
        return store_commands.rollback(url, args.resource, user=user, reason=reason)
    change = edit.rollback(args.routes, args.resource, user=user, reason=reason)
    print(f"{change.resource}: {change.from_backend} -> {change.to_backend} (rollback)")
    return 0


def store(args: argparse.Namespace) -> int:
    """`store pull` and `store push` (proxy.store_commands)."""
    from proxy import store_commands

    return store_commands.store_command(args, current_user(args))


class AdminError(Exception):
    """The admin API could not be read; the message is the line to print."""


def fetch_json(command: str, url: str) -> Any:
    import urllib.error  # with http.client and email: for the admin API's commands alone
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("message") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise AdminError(f"{PROG} {command}: {message}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(f"{PROG} {command}: cannot read {url}: {reason}") from exc


def status(args: argparse.Namespace) -> int:
    admin = args.admin.rstrip("/")
    if args.fleet:
        return fleet_status(admin)
    try:
        body = fetch_json("status", admin + "/-/routes")
        shadowed = any(route.get("shadow") for route in body["resources"].values())
        shadow = fetch_json("status", admin + "/-/diffs")["resources"] if shadowed else None
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return 1
    print_status(body, sys.stdout, shadow)
    print_groups(body, sys.stdout)
    return 0


def fleet_status(admin: str) -> int:
    """`status --fleet`: the live replicas (GET /-/fleet), lagging ones flagged; 1 if any lags."""
    try:
        body = fetch_json("status", admin + "/-/fleet")
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return 1
    print_fleet(body, sys.stdout)
    return 1 if body["lagging"] else 0


def print_fleet(body: Mapping[str, Any], out: TextIO) -> None:
    print(f"table revision: {body['revision']} (store at {body['store_revision']})", file=out)
    rows = [("REPLICA", "REVISION", "SOURCE", "SHA256", "APPLIED AT", "STATE")]
    for replica in body["replicas"]:
        state = "LAGGING" if replica["lagging"] else "ok"
        rows.append(
            (
                replica["id"],
                str(replica["revision"]),
                replica["source"],
                replica["sha256"][:12],
                replica["applied_at"],
                state,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
    if not body["replicas"]:
        print("no live replica", file=out)


def diffs(args: argparse.Namespace) -> int:
    """`strangler diffs` (proxy.diffs_commands) on the admin API."""
    from proxy import diffs_commands

    try:
        return diffs_commands.diffs(args, lambda url: fetch_json("diffs", url), sys.stdout)
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return 1


def ready(args: argparse.Namespace) -> int:
    """The readiness verdict of GET /-/ready/{resource}: exit 0 when ready, 1 when not."""
    query = "" if args.min_requests is None else f"?min_requests={args.min_requests}"
    resource = urllib.parse.quote(args.resource, safe="")
    try:
        body = fetch_json("ready", f"{args.admin.rstrip('/')}/-/ready/{resource}{query}")
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return 1
    print_ready(body, sys.stdout)
    return 0 if body["ready"] else 1


def print_status(
    body: Mapping[str, Any], out: TextIO, shadow: Mapping[str, Any] | None = None
) -> None:
    """The table in force as text: one header block, then one row per resource.

    With `shadow` (GET /-/diffs figures; only when a resource is shadowed) a SHADOW column shows
    each shadowed resource's match rate and the comparisons behind it.
    """
    # Imported here: the routing model is tens of milliseconds to load, for this one name.
    from proxy.routing.model import OTHER_RESOURCE

    print(f"source:      {body['source']} (version {body['version']})", file=out)
    print(f"sha256:      {body['sha256']}", file=out)
    print(f"loaded at:   {body['loaded_at']}", file=out)
    error = body.get("last_reload_error")
    print(f"last reload: {'failed: ' + error if error else 'ok'}", file=out)
    print(progress_line(body), file=out)
    traffic: Mapping[str, Mapping[str, Any]] = body.get("traffic", {})
    stages: Mapping[str, str] = body.get("stages", {})
    rows: list[tuple[str, ...]] = [("RESOURCE", "STAGE", "BACKEND", "METHODS", "REQ/S", "ERRORS")]
    for name, route in body["resources"].items():
        cells = (route["backend"], methods_text(route["methods"]), *rates(traffic, name))
        rows.append((name, stages.get(name, "-"), *cells))
    other = (body["default"], "-", *rates(traffic, OTHER_RESOURCE))
    rows.append((f"({OTHER_RESOURCE})", stages.get(OTHER_RESOURCE, "-"), *other))
    if shadow is not None:
        names = [*body["resources"], OTHER_RESOURCE]
        column = ["SHADOW", *(shadow_text(shadow.get(name)) for name in names)]
        rows = [(*row, cell) for row, cell in zip(rows, column, strict=True)]
    pinned = pinned_column(body)  # when a resource pins clients
    if pinned is not None:
        rows = [(*row, cell) for row, cell in zip(rows, pinned, strict=True)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def shadow_text(figures: Mapping[str, Any] | None) -> str:
    """`98.0% of 100` (match rate of the comparisons so far), with `, 3 noise` and the worst
    class (`, worst status`) when there are, or "-" when never shadowed."""
    if figures is None:
        return "-"
    compared = figures["match"] + figures["mismatch"] + figures["error"]
    text = f"{percent(figures['match_rate'])} of {compared:.0f}" if compared else "no data"
    noise = figures.get("noise") or 0
    worst = figures.get("worst")
    return (
        text
        + (f", {noise:.0f} noise" if noise else "")
        + (f", worst {worst}" if worst and worst != "noise" else "")
    )


def methods_text(methods: Mapping[str, str]) -> str:
    return ",".join(f"{method}->{backend}" for method, backend in sorted(methods.items())) or "-"


def rates(traffic: Mapping[str, Mapping[str, Any]], name: str) -> tuple[str, str]:
    entry = traffic.get(name, {})
    per_second = entry.get("requests_per_second") or 0.0
    error_rate = entry.get("error_rate")
    return f"{per_second:.1f}", "-" if error_rate is None else f"{error_rate:.1%}"


def init(args: argparse.Namespace) -> int:
    """`strangler init` (proxy.init_commands)."""
    from proxy import init_commands

    return init_commands.init(args)


def pin(args: argparse.Namespace) -> int:
    """`strangler pin` (proxy.pin_commands) on routes.yaml."""
    from proxy import pin_commands

    return pin_commands.pin_command(args, current_user(args))


COMMANDS = {
    "serve": serve,
    "validate": validate,
    "flip": flip,
    "rollback": rollback,
    "status": status,
    "diffs": diffs,
    "ready": ready,
    "store": store,
    "rollout": rollout,
    "init": init,
    "pin": pin,
}
