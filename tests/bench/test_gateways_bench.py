"""The gateway benchmark's pure parts, and wrk's request script against a real loopback server.

A real run of the benchmark (the whole stack, about 20 s even with 1 s rounds) is left to
`make bench`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import gateways
from bench.__main__ import parse_args
from bench.gateways import Case, Comparison
from bench.load import Result, lua_script, parse, run_load

WRK_REPORT = """\
Running 4s test @ http://127.0.0.1:40001
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.20ms   12.30ms 120.00ms   70.00%
    Req/Sec   190.00     20.00   230.00     75.00%
  Latency Distribution
     50%   40.50ms
     75%   48.00ms
     90%   57.00ms
     99%    1.02s
  761 requests in 4.01s, 310.00KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:    189.78
Transfer/sec:     77.31KB
"""


def result(rps: float) -> Result:
    return Result(rps=rps, p50_ms=10.0, p99_ms=20.0, errors=0)


def case(endpoint: str, target: str) -> Case:
    return Case(endpoint, target, f"http://127.0.0.1:1/{target}", ("/x",))


def test_defaults_run_both_benchmarks() -> None:
    args = parse_args([])
    assert (args.which, args.seconds, args.rounds) == (
        "all",
        4.0,
        None,
    )  # None: each benchmark's own default
    assert (args.workers, args.connections) == (2, 8)


def test_one_benchmark_with_options() -> None:
    args = parse_args(["gateways", "--workers", "4", "--seconds", "1", "--rounds", "1"])
    assert (args.which, args.workers, args.seconds, args.rounds) == ("gateways", 4, 1.0, 1)
    assert parse_args(["proxy"]).which == "proxy"


@pytest.mark.parametrize("argv", [["nginx"], ["--workers", "0"], ["--seconds", "-1"]])
def test_bad_arguments_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


def test_wrk_report_parsed() -> None:
    expected = Result(rps=189.78, p50_ms=40.5, p99_ms=1020.0, errors=8, requests=761)
    assert parse(WRK_REPORT) == expected


def test_lua_script_sends_headers_and_cycles_paths() -> None:
    assert lua_script(["/a", '/b"c'], {"X-Application-Key": "demo"}) == (
        'wrk.headers["X-Application-Key"] = "demo"\n'
        'local paths = {"/a", "/b\\"c"}\n'
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )


def test_round_order_flips_gateways_on_odd_rounds() -> None:
    cases = [case("a", "legacy"), case("a", "drf"), case("b", "legacy"), case("b", "drf")]
    cases.append(case("a", "reservations"))
    assert gateways.round_order(cases, 0) == cases
    flipped = [(c.endpoint, c.target) for c in gateways.round_order(cases, 1)]
    assert flipped == [
        ("a", "drf"), ("a", "legacy"), ("b", "drf"), ("b", "legacy"), ("a", "reservations"),
    ]  # fmt: skip


def test_every_endpoint_on_both_gateways_then_the_sources() -> None:
    config = gateways.free_config(gateways.ROOT / "unused", workers=3)
    assert config.gateway_workers == 3
    pairs = [(c.endpoint, c.target) for c in gateways.cases(config)]
    assert pairs == [
        ("bookings/<id>", "legacy"),
        ("bookings/<id>", "drf"),
        ("tours/<id>/departures", "legacy"),
        ("tours/<id>/departures", "drf"),
        ("itineraries/<id>/itinerary_maps", "legacy"),
        ("itineraries/<id>/itinerary_maps", "drf"),
        ("bookings/<id>", "reservations"),
        ("bookings/<id>", "crm"),
    ]
    assert len(set(gateways.ENDPOINTS["bookings/<id>"])) == 200


def runs_for(rps: dict[str, tuple[list[float], list[float]]]) -> dict[Case, list[Result]]:
    runs: dict[Case, list[Result]] = {}
    for endpoint, (legacy, drf) in rps.items():
        runs[case(endpoint, "legacy")] = [result(r) for r in legacy]
        runs[case(endpoint, "drf")] = [result(r) for r in drf]
    return runs


RUNS = {
    "bookings/<id>": ([100.0, 200.0, 100.0], [80.0, 120.0, 90.0]),
    "tours/<id>/departures": ([100.0, 100.0, 100.0], [60.0, 90.0, 65.0]),
    "itineraries/<id>/itinerary_maps": ([100.0], [70.0]),
}


def test_ratio_is_the_median_of_paired_rounds() -> None:
    bookings, tours, maps = gateways.compare(runs_for(RUNS))
    assert bookings.ratios == (0.8, 0.6, 0.9)
    assert (bookings.ratio, bookings.ratio_of_best, bookings.passed) == (0.8, 0.6, True)
    assert (tours.ratio, tours.passed) == (0.65, False)
    assert (maps.ratio, maps.passed) == (0.7, True)


def test_verdict_says_pass_or_fail_per_endpoint_and_overall() -> None:
    text = gateways.verdict(gateways.compare(runs_for(RUNS)))
    assert text.splitlines() == [
        "DRF/legacy throughput (median of per-round ratios; target >= 0.70):",
        "  bookings/<id>                    0.800  PASS  (rounds: 0.80 0.60 0.90;"
        " ratio of best rounds 0.600)",
        "  tours/<id>/departures            0.650  FAIL  (rounds: 0.60 0.90 0.65;"
        " ratio of best rounds 0.900)",
        "  itineraries/<id>/itinerary_maps  0.700  PASS  (rounds: 0.70;"
        " ratio of best rounds 0.700)",
        "gateways: FAIL",
    ]
    passing = [Comparison("x", result(100), result(75), (0.75,))]
    assert gateways.verdict(passing).splitlines()[-1] == "gateways: PASS"


def test_table_shows_best_round_and_all_errors() -> None:
    runs = {
        case("bookings/<id>", "legacy"): [result(90.4), Result(120.6, 30.0, 80.5, 2)],
        case("bookings/<id>", "reservations"): [Result(2000.0, 3.25, 9.0, 1)],
    }
    lines = gateways.table(runs).splitlines()
    assert lines[0].split() == ["endpoint", "target", "req/s", "p50", "p99", "errors"]
    assert lines[1].split() == ["bookings/<id>", "legacy", "121", "30.00ms", "80.50ms", "2"]
    assert lines[2].split() == ["bookings/<id>", "reservations*", "2000", "3.25ms", "9.00ms", "1"]


def test_report_json_per_endpoint_and_sources() -> None:
    runs = runs_for(RUNS)
    runs[case("bookings/<id>", "reservations")] = [result(1500.0), result(1700.0)]
    report = gateways.report(runs, gateways.compare(runs), {"rounds": 3})
    assert report["rounds"] == 3
    assert report["target_ratio"] == 0.7
    assert report["passed"] is False
    assert report["sources_direct"] == {
        "reservations": {
            "endpoint": "bookings/<id>",
            "rps": 1700.0,
            "p50_ms": 10.0,
            "p99_ms": 20.0,
            "errors": 0,
            "requests": 0,
            "rps_per_round": [1500.0, 1700.0],
        }
    }
    bookings = report["endpoints"]["bookings/<id>"]  # type: ignore[index]
    assert bookings["drf"]["rps"] == 120.0
    assert bookings["legacy"]["rps_per_round"] == [100.0, 200.0, 100.0]
    assert (bookings["drf_vs_legacy"], bookings["passed"]) == (0.8, True)


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append((self.path, self.headers.get("X-Application-Key")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_load_sends_the_key_on_every_request_and_cycles_paths(
    recorder: tuple[str, list[tuple[str, str | None]]],
) -> None:
    url, seen = recorder
    measured = run_load(url, 1, 1, paths=["/a", "/b", "/c"], headers=gateways.HEADERS)
    assert measured.errors == 0
    assert measured.rps > 0
    assert {key for _, key in seen} == {"demo"}
    paths = [path for path, _ in seen]
    following = {"/a": "/b", "/b": "/c", "/c": "/a"}
    assert len(paths) > 6
    assert all(following[a] == b for a, b in zip(paths, paths[1:], strict=False))
