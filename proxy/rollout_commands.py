"""`strangler rollout start|pause|resume|abort RESOURCE`: edit a rollout plan's state, audited as
`rollout-start`, `-pause`, `-resume`, `-abort` (for `proxy.cli`). On routes.yaml (`--routes`)
here; on the fleet's store (`--store URL` or STRANGLER_STORE) through
`proxy.store_commands.rollout`.

`start` sets `state: running` at the first step (a paused plan: at its step) and puts that step's
traffic in the entry; `abort` sends every client back to the old stack (canary 0, shadow off).
The autopilot of the running proxy (`proxy.control.autopilot`) takes it from there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from proxy.routing import rollout_edit


def add_rollout_parser(commands: Any) -> None:
    rollout = commands.add_parser("rollout", help="start, pause, resume or abort a rollout plan")
    rollout.add_argument("action", choices=rollout_edit.ACTIONS)
    rollout.add_argument("resource")
    rollout.add_argument("--routes", type=Path, default=Path("routes.yaml"), help="routing table")
    rollout.add_argument("--reason", default="", help="why, for the audit log")
    rollout.add_argument("--user", help="who, for the audit log (default: STRANGLER_USER, ...)")
    rollout.add_argument(
        "--store", help="the table in etcd, etcd://HOST:PORT[,...]/PREFIX (or STRANGLER_STORE)"
    )


def rollout(args: argparse.Namespace, user: str) -> int:
    """The command on routes.yaml."""
    change = rollout_edit.command(
        args.routes, args.resource, args.action, user=user, reason=args.reason
    )
    print(
        f"{change.resource}: rollout {args.action} ({change.from_backend} -> {change.to_backend})"
    )
    return 0
