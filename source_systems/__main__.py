"""`python -m source_systems <name> [--host H] [--port P] [--db PATH]`: run one source system."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiohttp import web

from source_systems import SYSTEMS
from source_systems.app import create_app

DEFAULT_PORTS = {"reservations": 5101, "crm": 5102, "operations": 5103}


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m source_systems", description=__doc__)
    parser.add_argument("name", choices=sorted(SYSTEMS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: $<NAME>_PORT, else 5101/5102/5103")
    parser.add_argument("--db", type=Path, help="default: $STRANGLER_DATA_DIR/<name>.sqlite3")
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = int(environ.get(f"{args.name.upper()}_PORT", DEFAULT_PORTS[args.name]))
    if args.db is None:
        args.db = Path(environ.get("STRANGLER_DATA_DIR", "var")) / f"{args.name}.sqlite3"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(SYSTEMS[args.name], args.db)

    async def announce(app: web.Application) -> None:
        logging.getLogger("source_systems").info(
            "%s listening on http://%s:%d (db %s)", args.name, args.host, args.port, args.db
        )

    app.on_startup.append(announce)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
