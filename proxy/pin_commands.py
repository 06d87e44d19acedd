"""`strangler pin RESOURCE`: send one client of a resource to a backend, whatever the canary and
the per-method overrides (for `proxy.cli`).

    strangler pin bookings --header X-Application-Key --value KEY --backend legacy
    strangler pin bookings --cookie session --value - --backend legacy   # the value from stdin
    strangler pin bookings --client-ip 10.0.0.0/8 --backend legacy

A header or cookie value is written to routes.yaml only as its SHA-256 (`value_sha256`), with
the lock, atomic write and audit line of a flip (`proxy.routing.pin_edit`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from proxy.routing.pin_edit import describe, pin, secret_pin


def pin_command(args: argparse.Namespace, user: str, stdin: TextIO | None = None) -> int:
    """Add the pin to routes.yaml; 2 (usage) when --value is missing or out of place."""
    if args.client_ip is not None:
        if args.value is not None:
            return _usage("--client-ip takes no --value (the address or network is the value)")
        match, value = "client_ip", args.client_ip
    else:
        if args.value is None:
            return _usage("--header and --cookie need --value")
        match = f"header:{args.header}" if args.header is not None else f"cookie:{args.cookie}"
        value = args.value
        if value == "-":
            value = (stdin or sys.stdin).readline().rstrip("\r\n")
    client = secret_pin(match, value, args.backend)
    change = pin(args.routes, args.resource, client, user=user, reason=args.reason)
    done = "already pinned, nothing changed" if not change.recorded else "pinned"
    print(f"{change.resource}: {describe(client)} -> {client.backend} ({done})")
    return 0


def _usage(message: str) -> int:
    print(f"strangler pin: {message}", file=sys.stderr)
    return 2
