"""`strangler`'s command line: every command's arguments (argparse), and the usage rules of
`flip` and `rollback` that argparse cannot say (for `proxy.cli`).

It imports nothing of the proxy, so that reading a command line costs no more than argparse:
each command imports what it runs on when it runs (`proxy.cli`). For that, `KEEP` and
`ROLLOUT_ACTIONS` are written out here (tests keep them equal to their sources), and the commands
read their defaults from here (`SHOWN`, `KEEP`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PROG = "strangler"
DEFAULT_ADMIN = "http://127.0.0.1:8081"
USER_HELP = "who, for the audit log (default: STRANGLER_USER, the login name, git's user.email)"
SHOWN = 10  # `diffs`: mismatches of each class shown by default
KEEP = 50  # `diffs --export`: all a proxy keeps of each class (proxy.migration.shadow.KEEP)
ROLLOUT_ACTIONS = ("start", "pause", "resume", "abort")  # proxy.routing.rollout_edit.ACTIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="A strangler-fig migration proxy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument("--routes", type=Path, help="routing table (default routes.yaml)")
    serve.add_argument("--host", help="public listener address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="public listener port (default 8080)")
    serve.add_argument("--admin-host", help="admin listener address (default 127.0.0.1)")
    serve.add_argument("--admin-port", type=int, help="admin listener port (default 8081)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    add_store(serve)
    serve.add_argument(
        "--store-cache",
        type=Path,
        help="with --store: the last applied table, served at start when the store is unreachable",
    )

    validate = commands.add_parser("validate", help="check a routing table; print OK or errors")
    add_routes(validate)

    flip = commands.add_parser("flip", help="send a resource (or a --group) to a backend")
    flip.add_argument("resource", nargs="?", help="the resource (with --group: the backend)")
    flip.add_argument("backend", nargs="?")
    add_group_options(flip)
    add_routes(flip)
    flip.add_argument("--reason", default="", help="why, for the audit log")
    add_store(flip)

    rollback = commands.add_parser("rollback", help="undo a resource's (or a --group's) last flip")
    rollback.add_argument("resource", nargs="?", help="the resource (or --group GROUP)")
    add_group_options(rollback)
    add_routes(rollback)
    rollback.add_argument("--reason", default="", help="why, for the audit log")
    add_store(rollback)

    status = commands.add_parser("status", help="show the table a running proxy serves")
    add_admin(status)
    status.add_argument(
        "--fleet", action="store_true", help="list the replicas sharing the store, lagging ones"
    )
    add_store(status)

    add_diffs_parser(commands)
    ready = commands.add_parser("ready", help="is the new stack ready for a resource? (exit 0/1)")
    ready.add_argument("resource")
    add_admin(ready)
    ready.add_argument("--min-requests", type=int, help="comparisons/requests needed (default 200)")
    add_store_parser(commands)
    add_rollout_parser(commands)
    add_user(add_pin_parser(commands))
    add_init_parser(commands)
    return parser


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", help="the table in etcd, etcd://HOST:PORT[,...]/PREFIX (or STRANGLER_STORE)"
    )


def add_routes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routes", type=Path, default=Path("routes.yaml"), help="routing table")


def add_admin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin", default=DEFAULT_ADMIN, help=f"admin URL (default {DEFAULT_ADMIN})"
    )


# -- flip and rollback: RESOURCE, or --group GROUP ---------------------------------------------


def add_group_options(parser: argparse.ArgumentParser) -> None:
    """`--group` and `--user` on `flip` or `rollback`, whose RESOURCE (and BACKEND) positionals
    are optional; `check` then tells a usage error as argparse would."""
    parser.add_argument("--group", help="every member of this group of routes.yaml at once")
    add_user(parser)
    parser.set_defaults(usage_error=parser.error)


def add_user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help=USER_HELP)


def check(args: argparse.Namespace) -> None:
    """`flip RESOURCE BACKEND` or `flip --group GROUP BACKEND`; `rollback RESOURCE` or
    `rollback --group GROUP`. With --group, flip's one positional is the backend: moved to
    `args.backend`. Anything else: argparse's usage error (exit 2)."""
    if args.command not in ("flip", "rollback"):
        return
    group, resource = args.group, args.resource
    if args.command == "rollback":
        if group is not None and resource is not None:
            args.usage_error("give RESOURCE or --group GROUP, not both")
        if group is None and resource is None:
            args.usage_error("the following arguments are required: resource (or --group)")
        return
    if group is not None:
        if args.backend is not None:
            args.usage_error("with --group GROUP, give only BACKEND")
        args.resource, args.backend = None, resource
        missing = [] if resource is not None else ["backend"]
    else:
        missing = [name for name in ("resource", "backend") if getattr(args, name) is None]
    if missing:
        args.usage_error(f"the following arguments are required: {', '.join(missing)}")


# -- the other commands (`commands`: argparse's subparsers action) ----------------------------


def add_diffs_parser(commands: Any) -> None:
    diffs = commands.add_parser("diffs", help="show a resource's latest shadow mismatches")
    diffs.add_argument("resource")
    add_admin(diffs)
    diffs.add_argument(
        "--limit",
        type=int,
        help=f"mismatches of each class (default {SHOWN}; with --export {KEEP}, all kept)",
    )
    shown = diffs.add_mutually_exclusive_group()
    shown.add_argument(
        "--noise", action="store_true", help="the learned noise paths and their ignore rule"
    )
    shown.add_argument(
        "--export",
        choices=("pytest",),
        metavar="FORMAT",
        help="print a test module replaying the kept mismatches against the new gateway "
        "(FORMAT: pytest)",
    )
    add_store(diffs)  # accepted for symmetry: any replica's admin API merges the fleet's diffs


def add_store_parser(commands: Any) -> None:
    """`store pull` and `store push`."""
    store = commands.add_parser("store", help="the fleet's table in etcd: pull it, push a file")
    actions = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    pull = actions.add_parser("pull", help="print the stored table (its revision on stderr)")
    add_store(pull)
    push = actions.add_parser("push", help="validate FILE and make it the stored table")
    push.add_argument("file", type=Path, metavar="FILE")
    add_store(push)
    push.add_argument("--reason", default="", help="why, for the audit log")
    push.add_argument(
        "--expect-revision", type=int, help="refuse unless the table is at this revision"
    )
    push.add_argument("--force", action="store_true", help="overwrite whatever the store holds")
    push.add_argument("--user", help="who, for the audit log (default: STRANGLER_USER, ...)")


def add_rollout_parser(commands: Any) -> None:
    rollout = commands.add_parser("rollout", help="start, pause, resume or abort a rollout plan")
    rollout.add_argument("action", choices=ROLLOUT_ACTIONS)
    rollout.add_argument("resource")
    add_routes(rollout)
    rollout.add_argument("--reason", default="", help="why, for the audit log")
    rollout.add_argument("--user", help="who, for the audit log (default: STRANGLER_USER, ...)")
    add_store(rollout)


def add_pin_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "pin", help="send one client of a resource to a backend (before canary and methods)"
    )
    parser.add_argument("resource")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--header", metavar="NAME", help="pin by this request header's value")
    which.add_argument("--cookie", metavar="NAME", help="pin by this cookie's value")
    which.add_argument("--client-ip", metavar="CIDR", help="pin an address or a network")
    parser.add_argument(
        "--value", help="the header's or cookie's value (written as its SHA-256; - reads stdin)"
    )
    parser.add_argument("--backend", required=True, help="where the client's requests go")
    add_routes(parser)
    parser.add_argument("--reason", default="", help="why, for the audit log")
    return parser


def add_init_parser(commands: Any) -> None:
    init = commands.add_parser("init", help="write a first routes.yaml from a spec or a log")
    source = init.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-openapi", type=Path, metavar="SPEC", help="OpenAPI 3 (YAML/JSON)")
    source.add_argument(
        "--from-access-log", type=Path, metavar="FILE", help="JSON lines or combined log format"
    )
    init.add_argument("--default", help="the backend every resource starts on (default: first)")
    init.add_argument(
        "--backend",
        action="append",
        metavar="NAME=URL",
        help="a backend (repeat; default legacy=http://127.0.0.1:5000 drf=http://127.0.0.1:8000)",
    )
    init.add_argument(
        "--nested", action="store_true", help="also list nested shapes (tours/*/departures)"
    )
