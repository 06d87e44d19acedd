"""`python -m bench [proxy|instructions|routing|workers|streaming|gateways|fleet]`: the
benchmarks, all by default, in turn.

proxy:        a static backend direct, through our proxy and through nginx, against the proxy's
              targets (bench.proxy); bench/results/latest.json.
instructions: instructions per request of our proxy and of nginx, counted by callgrind: the
              steady measure for hot-path changes (bench.instructions);
              bench/results/instructions.json.
routing:      instructions per request of our proxy on today's 7-resource table and on a
              90-resource table with 30 nested keys, against the 5% target (bench.routing);
              bench/results/routing.json.
workers:      `--workers 2`: each worker's share of an exact load (SO_REUSEPORT) and /metrics
              counting every request once, against the 40-60% target; `--workers 1` and 2
              req/s side by side (bench.workers); bench/results/workers.json.
streaming:    a 1 GiB download direct, through the proxy and through nginx (buffering on, 64 KiB
              buffers), against the 0.7 rate target; the proxy's peak RSS growth
              (bench.streaming); bench/results/streaming.json.
gateways:     the legacy and the DRF gateway under gunicorn, DRF/legacy throughput against the
              70% target (bench.gateways); bench/results/gateways.json.
fleet:        etcd and three proxy replicas: from `strangler flip --store` returning until every
              replica routes the new way, median and p99 over 50 flips against the 250 ms p99
              target (bench.fleet); bench/results/fleet.json.

A benchmark reports: the exit status is 0 whatever the numbers (PASS/FAIL is printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial

from bench import fleet, gateways, instructions, proxy, routing, streaming, workers

WHICH = ("all", "proxy", "instructions", "routing", "workers", "streaming", "gateways", "fleet")


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
        default=None,
        help="interleaved rounds: proxy and streaming (default 5): median ratios to nginx;"
        " workers and gateways (default 3): shares of each round, median DRF/legacy ratio",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gateways: gunicorn workers of each (default 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="gateways: wrk concurrency (default 8)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=4000,
        help="instructions, routing: requests counted (default 4000)",
    )
    parser.add_argument("--flips", type=int, default=50, help="fleet: flips timed (default 50)")
    args = parser.parse_args(argv)
    for name in ("seconds", "rounds", "workers", "connections", "requests", "flips"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs: dict[str, Callable[[], object]] = {
        "proxy": partial(proxy.run, args.seconds, args.rounds or 5),
        "instructions": partial(instructions.run, args.requests),
        "routing": partial(routing.run, args.requests),
        "workers": partial(workers.run, args.seconds, args.rounds or 3),
        "streaming": partial(streaming.run, args.rounds or 5),
        "gateways": partial(
            gateways.run, args.seconds, args.rounds or 3, args.workers, args.connections
        ),
        "fleet": partial(fleet.run, args.flips),
    }
    chosen = list(runs) if args.which == "all" else [args.which]
    for index, name in enumerate(chosen):
        if index:
            print()
        runs[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
