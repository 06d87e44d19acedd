"""`strangler pin RESOURCE`: send one client of a resource to a backend, whatever the canary and
the per-method overrides (for `proxy.cli`); and the PINNED column of `strangler status`.

    strangler pin bookings --header X-Application-Key --value KEY --backend legacy
    strangler pin bookings --cookie session --value - --backend legacy   # the value from stdin
    strangler pin bookings --client-ip 10.0.0.0/8 --backend legacy

A header or cookie value is written to routes.yaml only as its SHA-256 (`value_sha256`), with
the lock, atomic write and audit line of a flip (`proxy.routing.pin_edit`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from proxy.routing.pin_edit import describe, pin, secret_pin


def add_pin_parser(commands: Any) -> argparse.ArgumentParser:
    """`strangler pin` on the CLI's subcommands (`commands`: argparse's subparsers action)."""
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
    parser.add_argument("--routes", type=Path, default=Path("routes.yaml"), help="routing table")
    parser.add_argument("--reason", default="", help="why, for the audit log")
    return parser


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


def pinned_column(body: Mapping[str, Any]) -> list[str] | None:
    """`strangler status`'s PINNED column (header, one cell per resource, then "(other)"'s) from
    GET /-/routes: pins per backend (`2->legacy`); None when no resource pins a client."""
    resources: Mapping[str, Mapping[str, Any]] = body["resources"]
    if not any(route.get("clients") for route in resources.values()):
        return None
    cells = ["PINNED"]
    for route in resources.values():
        counts = Counter(pinned["backend"] for pinned in route.get("clients") or ())
        cells.append(",".join(f"{n}->{name}" for name, n in sorted(counts.items())) or "-")
    return [*cells, "-"]
