"""`strangler flip --group GROUP BACKEND` and `strangler rollback --group GROUP` on routes.yaml
(for `proxy.cli`): `proxy.routing.group_edit`, every member in one write, one audit entry naming
the group. With `--store` they run through `proxy.store_commands` instead.

The options (`--group`, and `--user` on every command that writes) and their usage rules live in
`proxy.arguments`, who the audit log records in `proxy.settings.command_user`, and the groups
under `strangler status`'s table in `proxy.ready_text.print_groups`.
"""

from __future__ import annotations

import argparse

from proxy.routing import group_edit


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
