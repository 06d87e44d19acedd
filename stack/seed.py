"""`python -m stack.seed FILE --store URL`: the first table of a new fleet.

An empty store (no routes key yet) gets FILE through `strangler store push --expect-revision 0`
(validated, audited, written only while the key does not exist); a store that already holds a
table is left alone, so running it again (each `make fleet`, a re-run Kubernetes Job) never
undoes a flip. It waits for the store to answer (etcd may start after the seed, in a cluster);
exit 0 when the store holds a table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from proxy.cli import main as strangler
from proxy.routing.store import RouteStore, StoreError, parse_store_url


async def stored_revision(url: str) -> int | None:
    """The routes key's revision, None when the store holds no table."""
    async with RouteStore(parse_store_url(url)) as store:
        table = await store.read()
    return None if table.text is None else table.revision


def wait_for_store(url: str, timeout: float) -> int | None:
    """`stored_revision`, retried until the store answers or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return asyncio.run(stored_revision(url))
        except StoreError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.seed", description=__doc__)
    parser.add_argument("file", help="routes.yaml to push when the store is empty")
    parser.add_argument("--store", required=True, help="etcd://HOST:PORT[,HOST:PORT]/PREFIX")
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the store (default 60)"
    )
    args = parser.parse_args(argv)
    try:
        revision = wait_for_store(args.store, args.wait)
    except StoreError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    if revision is not None:
        print(f"seed: the store already holds a table (revision {revision}); left as it is")
        return 0
    reason = f"seed: first table of the fleet, from {args.file}"
    push = ["store", "push", args.file, "--store", args.store, "--reason", reason]
    code = strangler([*push, "--expect-revision", "0"])  # 0: the routes key does not exist
    if code != 0 and seeded_meanwhile(args.store):
        print("seed: another seed wrote the first table meanwhile; left as it is")
        return 0
    return code


def seeded_meanwhile(url: str) -> bool:
    """After a failed push: does the store hold a table now (two seeds raced)?"""
    try:
        return asyncio.run(stored_revision(url)) is not None
    except StoreError:
        return False


if __name__ == "__main__":
    sys.exit(main())
