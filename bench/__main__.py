"""`python -m bench [proxy|gateways]`: the benchmarks, both by default, one after the other.

proxy:    a static backend direct, through our proxy and through nginx (bench.proxy);
          bench/results/latest.json.
gateways: the legacy and the DRF gateway under gunicorn, DRF/legacy throughput against the
          70% target (bench.gateways); bench/results/gateways.json.

A benchmark reports: the exit status is 0 whatever the numbers (PASS/FAIL is printed).
"""

from __future__ import annotations

import argparse
import sys

from bench import gateways, proxy

WHICH = ("all", "proxy", "gateways")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "which", nargs="?", choices=WHICH, default="all", help="benchmark to run (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement (default 4)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds (default 3): best req/s kept; gateways: median DRF/legacy ratio",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gateways: gunicorn workers of each (default 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="gateways: wrk concurrency (default 8)"
    )
    args = parser.parse_args(argv)
    for name in ("seconds", "rounds", "workers", "connections"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.which in ("all", "proxy"):
        proxy.run(args.seconds, args.rounds)
    if args.which == "all":
        print()
    if args.which in ("all", "gateways"):
        gateways.run(args.seconds, args.rounds, args.workers, args.connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
