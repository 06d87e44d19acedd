"""`strangler` (also `python -m proxy`): serve, validate, flip, rollback, status.

Exit codes: 0 done, 1 failed (one clear line per problem on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from proxy import edit
from proxy.routes import OTHER_RESOURCE, RoutesError, load_table

PROG = "strangler"
DEFAULT_ADMIN = "http://127.0.0.1:8081"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    command: str = args.command
    try:
        return int(COMMANDS[command](args))
    except RoutesError as exc:  # each already reads `file:line: message`
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    except edit.EditError as exc:
        print(f"{PROG} {command}: {exc}", file=sys.stderr)
        return 1


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

    validate = commands.add_parser("validate", help="check a routing table; print OK or errors")
    add_routes(validate)

    flip = commands.add_parser("flip", help="send a resource to a backend")
    flip.add_argument("resource")
    flip.add_argument("backend")
    add_routes(flip)
    flip.add_argument("--reason", default="", help="why, for the audit log")

    rollback = commands.add_parser("rollback", help="undo a resource's last flip")
    rollback.add_argument("resource")
    add_routes(rollback)
    rollback.add_argument("--reason", default="", help="why, for the audit log")

    status = commands.add_parser("status", help="show the table a running proxy serves")
    status.add_argument(
        "--admin", default=DEFAULT_ADMIN, help=f"admin URL (default {DEFAULT_ADMIN})"
    )
    return parser


def add_routes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routes", type=Path, default=Path("routes.yaml"), help="routing table")


def serve(args: argparse.Namespace) -> int:
    from proxy import server  # the data plane, imported only when serving
    from proxy.settings import Settings

    settings = Settings.from_env(
        os.environ,
        routes=args.routes,
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        workers=args.workers,
    )
    return server.serve(settings)


def validate(args: argparse.Namespace) -> int:
    load_table(args.routes)
    print("OK")
    return 0


def current_user(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("USER") or environ.get("LOGNAME") or "unknown"


def flip(args: argparse.Namespace) -> int:
    change = edit.flip(
        args.routes, args.resource, args.backend, user=current_user(), reason=args.reason
    )
    if not change.recorded:
        print(f"{change.resource}: already on {change.to_backend}, nothing changed")
    else:
        print(f"{change.resource}: {change.from_backend} -> {change.to_backend}")
    return 0


def rollback(args: argparse.Namespace) -> int:
    change = edit.rollback(args.routes, args.resource, user=current_user(), reason=args.reason)
    print(f"{change.resource}: {change.from_backend} -> {change.to_backend} (rollback)")
    return 0


def status(args: argparse.Namespace) -> int:
    url = args.admin.rstrip("/") + "/-/routes"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"{PROG} status: cannot read {url}: {reason}", file=sys.stderr)
        return 1
    print_status(body, sys.stdout)
    return 0


def print_status(body: Mapping[str, Any], out: TextIO) -> None:
    """The table in force as text: one header block, then one row per resource."""
    print(f"source:      {body['source']} (version {body['version']})", file=out)
    print(f"sha256:      {body['sha256']}", file=out)
    print(f"loaded at:   {body['loaded_at']}", file=out)
    error = body.get("last_reload_error")
    print(f"last reload: {'failed: ' + error if error else 'ok'}", file=out)
    traffic: Mapping[str, Mapping[str, Any]] = body.get("traffic", {})
    rows = [("RESOURCE", "BACKEND", "METHODS", "REQ/S", "ERRORS")]
    for name, route in body["resources"].items():
        rows.append((name, route["backend"], methods_text(route["methods"]), *rates(traffic, name)))
    rows.append((f"({OTHER_RESOURCE})", body["default"], "-", *rates(traffic, OTHER_RESOURCE)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def methods_text(methods: Mapping[str, str]) -> str:
    return ",".join(f"{method}->{backend}" for method, backend in sorted(methods.items())) or "-"


def rates(traffic: Mapping[str, Mapping[str, Any]], name: str) -> tuple[str, str]:
    entry = traffic.get(name, {})
    per_second = entry.get("requests_per_second") or 0.0
    error_rate = entry.get("error_rate")
    return f"{per_second:.1f}", "-" if error_rate is None else f"{error_rate:.1%}"


COMMANDS = {
    "serve": serve,
    "validate": validate,
    "flip": flip,
    "rollback": rollback,
    "status": status,
}
