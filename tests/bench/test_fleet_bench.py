"""The fleet benchmark's pure parts, and its upstream and poller against real loopback sockets.

A real run (etcd, three replicas, 50 flips: about 20 s) is left to `python -m bench fleet`.
"""

from __future__ import annotations

import aiohttp
import pytest

from bench import fleet
from bench.__main__ import parse_args
from bench.fleet import Flip, Summary, percentile, summarize, verdict
from proxy.routing.parser import parse_table
from tests.support import free_port


def test_fleet_is_a_benchmark_of_its_own() -> None:
    assert parse_args(["fleet"]).which == "fleet"
    assert parse_args(["fleet"]).flips == 50
    assert parse_args(["fleet", "--flips", "5"]).flips == 5


def test_no_flips_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["fleet", "--flips", "0"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([5.0, 1.0, 3.0, 2.0, 4.0], 0.5, 3.0),
        ([float(n) for n in range(1, 51)], 0.99, 50.0),
        ([float(n) for n in range(1, 201)], 0.99, 198.0),
        ([7.0], 0.99, 7.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def test_a_flips_propagation_is_its_slowest_replica_and_none_when_one_never_got_it() -> None:
    assert Flip("drf", 400.0, (3.0, 41.5, 0.0)).propagation_ms == 41.5
    assert Flip("drf", 400.0, (3.0, None, 0.0)).propagation_ms is None


def test_summary_over_the_flips_that_reached_every_replica() -> None:
    flips = [
        Flip("drf", 300.0, (1.0, 2.0, 10.0)),
        Flip("legacy", 500.0, (20.0, 5.0, 6.0)),
        Flip("drf", 400.0, (30.0, None, 1.0)),
        Flip("legacy", 600.0, (0.0, 0.0, 40.0)),
    ]
    assert summarize(flips) == Summary(
        flips=4, timed_out=1, median_ms=20.0, p99_ms=40.0, max_ms=40.0, write_median_ms=450.0
    )


def test_verdict_passes_on_the_p99_target_and_fails_above_it_or_on_a_timeout() -> None:
    passing = Summary(50, 0, 12.34, 250.0, 250.0, 4.12)
    assert verdict(passing) == (
        "50 flips, 3 replicas: propagation until every replica routes the new way (from the "
        "moment the flip's etcd write returned)\n"
        "  median 12.3 ms   p99 250.0 ms   max 250.0 ms   (target p99 <= 250 ms)\n"
        "  the write itself (one etcd transaction): median 4.1 ms\n"
        "fleet: PASS"
    )
    assert verdict(Summary(50, 0, 12.0, 250.1, 300.0, 400.0)).endswith("\nfleet: FAIL")
    timed_out = verdict(Summary(50, 2, 12.0, 30.0, 30.0, 400.0))
    assert timed_out.endswith("\n  2 flips did not reach every replica within 10 s\nfleet: FAIL")


def test_the_tables_backends_are_the_upstreams_named_by_the_environment() -> None:
    environ = {
        "STRANGLER_BACKEND_LEGACY_URL": "http://127.0.0.1:4001",
        "STRANGLER_BACKEND_DRF_URL": "http://127.0.0.1:4002",
    }
    table = parse_table(fleet.routes_text(), environ=environ)
    assert {name: backend.url for name, backend in table.backends.items()} == {
        "legacy": "http://127.0.0.1:4001",
        "drf": "http://127.0.0.1:4002",
    }
    assert table.routes["bookings"].backend == "legacy"


async def test_an_upstream_answers_its_name_and_the_poller_sees_it() -> None:
    port = free_port()
    runner = await fleet.upstream("drf", port)
    try:
        url = f"http://127.0.0.1:{port}/bookings/1"
        async with aiohttp.ClientSession() as session:
            assert await fleet.routed_to(session, url) == "drf"
            waited = await fleet.wait_for(session, url, "drf", fleet.time.perf_counter())
        assert waited is not None and 0 <= waited < 1000
    finally:
        await runner.cleanup()
