"""`python -m source_systems <name> [--host H] [--port P] [--db PATH]`: run one source system."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import uvloop  # a tenth less CPU per request than asyncio's loop, here
from aiohttp import web

from proxy.dryrun import SECRET_VARIABLE
from source_systems import SYSTEMS
from source_systems.app import create_app
from source_systems.auth import app as auth_app

AUTH = "auth"  # not a `System` declaration: a service of its own (source_systems.auth)
DEFAULT_PORTS = {"reservations": 5101, "crm": 5102, "operations": 5103, AUTH: 5104}


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m source_systems", description=__doc__)
    parser.add_argument("name", choices=sorted([*SYSTEMS, AUTH]))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: $<NAME>_PORT, else 5101 to 5104")
    parser.add_argument("--db", type=Path, help="default: $STRANGLER_DATA_DIR/<name>.sqlite3")
    parser.add_argument(
        "--token-lifetime",
        type=int,
        help="auth: seconds an access token lives; default $AUTH_TOKEN_LIFETIME, else 3600",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = int(environ.get(f"{args.name.upper()}_PORT", DEFAULT_PORTS[args.name]))
    if args.db is None:
        args.db = Path(environ.get("STRANGLER_DATA_DIR", "var")) / f"{args.name}.sqlite3"
    if args.token_lifetime is None:
        lifetime = environ.get("AUTH_TOKEN_LIFETIME", str(auth_app.DEFAULT_LIFETIME))
        args.token_lifetime = int(lifetime)
    return args


def build_app(args: argparse.Namespace, secret: str | None) -> web.Application:
    """The named system's application; `secret` verifies dry runs (the auth system has none)."""
    if args.name == AUTH:
        policy = auth_app.Policy(token_lifetime=args.token_lifetime)
        return auth_app.create_app(args.db, policy=policy)
    return create_app(SYSTEMS[args.name], args.db, secret)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    secret = os.environ.get(SECRET_VARIABLE) or None
    app = build_app(args, secret)
    dry_runs = "accepted when signed" if secret else f"refused (no {SECRET_VARIABLE})"
    if args.name == AUTH:
        dry_runs = "not applicable"

    async def announce(app: web.Application) -> None:
        logging.getLogger("source_systems").info(
            "%s listening on http://%s:%d (db %s); dry runs %s",
            args.name,
            args.host,
            args.port,
            args.db,
            dry_runs,
        )

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
