"""Groups and authors on the command line (for `proxy.cli`):

- `strangler flip --group GROUP BACKEND` and `strangler rollback --group GROUP` on routes.yaml
  (`proxy.routing.group_edit`: every member in one write, one audit entry naming the group);
  with `--store` they run through `proxy.store_commands` instead;
- `--user NAME` on every command that writes: who the audit log records (else STRANGLER_USER,
  the login name, then `git config user.email`: `proxy.settings.command_user`);
- the groups under `strangler status`'s table, one line each.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, TextIO

from proxy.routing import group_edit
from proxy.settings import command_user

USER_HELP = "who, for the audit log (default: STRANGLER_USER, the login name, git's user.email)"


def add_group_options(parser: argparse.ArgumentParser) -> None:
    """`--group` and `--user` on `flip` or `rollback`, whose RESOURCE (and BACKEND) positionals
    are optional; `check` then tells a usage error as argparse would."""
    parser.add_argument("--group", help="every member of this group of routes.yaml at once")
    add_user(parser)
    parser.set_defaults(usage_error=parser.error)


def add_user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help=USER_HELP)


def user_of(args: argparse.Namespace) -> str:
    return command_user(getattr(args, "user", None))


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


def flip(args: argparse.Namespace, user: str) -> int:
    """`flip --group GROUP BACKEND` on routes.yaml."""
    change = group_edit.flip_group(args.routes, args.group, args.backend, user=user,
                                   reason=args.reason)  # fmt: skip
    print("\n".join(group_edit.describe(change)))
    return 0


def rollback(args: argparse.Namespace, user: str) -> int:
    """`rollback --group GROUP` on routes.yaml."""
    change = group_edit.rollback_group(args.routes, args.group, user=user, reason=args.reason)
    print("\n".join(group_edit.describe(change)))
    return 0


def print_groups(body: Mapping[str, Any], out: TextIO) -> None:
    """`group reservations: bookings, customers`, one line per group of GET /-/routes."""
    groups: Mapping[str, list[str]] = body.get("groups") or {}
    for name, members in groups.items():
        print(f"group {name}: {', '.join(members)}", file=out)
