"""bench.routing's pure parts: the two tables it counts, and the quiet proxy's command line
(which bench.instructions counts too).

The callgrind runs themselves are left to `python -m bench routing`."""

from __future__ import annotations

import sys

import pytest

from bench import instructions, routing
from bench.__main__ import parse_args
from proxy.routing.parser import parse_table


def test_the_tables_are_valid_and_of_the_sizes_claimed() -> None:
    small = parse_table(routing.table7(9), environ={})
    big = parse_table(routing.table90(9), environ={})
    assert (len(small.routes), sum("/" in name for name in small.routes)) == (7, 0)
    assert (len(big.routes), sum("/" in name for name in big.routes)) == (90, 30)
    assert not small._nested and big._nested  # only the big one has tries
    routes = big.routes.values()
    features = [
        sum(getattr(r, f) is not None for r in routes) for f in ("canary", "shadow", "guard")
    ]
    assert features == [9, 9, 9]
    # the counted request walks the trie of its family, and ends on the plain key
    assert big.match("GET", "/bookings/1?expand=all").resource == "bookings"
    assert big.match("GET", "/bookings/1/customers").resource == "bookings/*/customers"


def test_the_quiet_proxy_runs_the_same_command() -> None:
    command = [sys.executable, "-m", "proxy", "serve", "--routes", "r.yaml"]
    assert instructions.quiet(command) == [
        sys.executable, "-m", "bench.quiet_proxy", "serve", "--routes", "r.yaml"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a proxy command line"):
        instructions.quiet(["nginx", "-c", "x"])


def test_routing_is_a_benchmark_of_its_own() -> None:
    assert parse_args(["routing", "--requests", "500"]).which == "routing"


def test_figures_take_the_background_out() -> None:
    figures = routing.Figures(raw=200_000.0, background=1_000_000.0, seconds=20.0)
    assert figures.per_request(4000) == 200_000 - 1_000_000 * 20 / 4000
