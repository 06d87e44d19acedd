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

from proxy.routing import rollout_edit


def rollout(args: argparse.Namespace, user: str) -> int:
    """The command on routes.yaml."""
    change = rollout_edit.command(
        args.routes, args.resource, args.action, user=user, reason=args.reason
    )
    print(
        f"{change.resource}: rollout {args.action} ({change.from_backend} -> {change.to_backend})"
    )
    return 0
