"""`python -m bench gateways`: requests/s of the legacy and the DRF gateway, side by side.

Starts what `make run` starts (the same `stack.services` command lines): the three source
systems on a fresh data directory and both gateways under gunicorn with the same worker count,
on free loopback ports. For each endpoint, wrk (1 thread, fixed concurrency, the
X-Application-Key header, cycling through a spread of ids) measures legacy and DRF back to
back, in interleaved rounds after a warm-up; the order flips every round. The source systems
behind GET /bookings/<id> (reservations and crm, which the gateways both call) are measured
directly in the same rounds, so a reader sees whether the gateways or the sources are the
bottleneck.

Per target the best round counts (other processes only ever slow a round down); the DRF/legacy
ratio is the median of the per-round ratios (each from two measurements seconds apart), which
holds up better on a busy machine than a ratio of two bests. Target: DRF >= 70% of legacy.
Results: a table on stdout and bench/results/gateways.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.load import Result, run_load
from stack.ports import free_port
from stack.runner import Stack
from stack.services import DEFAULT_PORTS, SOURCE_SYSTEMS, StackConfig, gunicorn, source_system

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
API_KEY = "demo"
HEADERS = {"X-Application-Key": API_KEY}
TARGET_RATIO = 0.70
GATEWAYS = ("legacy", "drf")

ENDPOINTS: Mapping[str, tuple[str, ...]] = {
    "bookings/<id>": tuple(f"/bookings/{n}" for n in range(1, 201)),
    "tours/<id>/departures": tuple(f"/tours/{n}/departures" for n in range(1, 51)),
    "itineraries/<id>/itinerary_maps": tuple(
        f"/itineraries/{n}/itinerary_maps" for n in range(1, 51)
    ),
}
SOURCES: Mapping[str, str] = {"reservations": "bookings/<id>", "crm": "bookings/<id>"}

Runner = Callable[..., Result]


@dataclass(frozen=True)
class Case:
    """One thing measured: an endpoint (a list of paths) on one target."""

    endpoint: str
    target: str
    url: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """Legacy vs DRF on one endpoint: the best round of each and the paired per-round ratios."""

    endpoint: str
    legacy: Result
    drf: Result
    ratios: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ratio_of_best(self) -> float:
        return self.drf.rps / self.legacy.rps

    @property
    def passed(self) -> bool:
        return self.ratio >= TARGET_RATIO


def free_config(data_dir: Path, workers: int) -> StackConfig:
    """`make run`'s configuration, on free loopback ports, with `workers` per gateway."""
    ports = {key: free_port() for key in DEFAULT_PORTS}
    return StackConfig(ports=ports, data_dir=data_dir, gateway_workers=workers)


def cases(config: StackConfig) -> list[Case]:
    """Every endpoint on both gateways, then the source systems behind GET /bookings/<id>."""
    result = [
        Case(endpoint, target, config.url(target), paths)
        for endpoint, paths in ENDPOINTS.items()
        for target in GATEWAYS
    ]
    result += [
        Case(endpoint, source, config.url(source), ENDPOINTS[endpoint])
        for source, endpoint in SOURCES.items()
    ]
    return result


def round_order(all_cases: Sequence[Case], number: int) -> list[Case]:
    """The cases of round `number`: gateways in declared order on even rounds, reversed on odd."""
    if number % 2 == 0:
        return list(all_cases)
    flipped: list[Case] = []
    for case in all_cases:
        if case.target in GATEWAYS and flipped and flipped[-1].endpoint == case.endpoint:
            flipped.insert(len(flipped) - 1, case)
        else:
            flipped.append(case)
    return flipped


def check(case: Case) -> None:
    """The first path answers 200 with the key: a benchmark of error responses is worthless."""
    request = urllib.request.Request(case.url + case.paths[0], headers=HEADERS)
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"{case.target} {case.paths[0]}: HTTP {response.status}")


def measure(
    all_cases: Sequence[Case],
    seconds: float,
    rounds: int,
    connections: int,
    runner: Runner = run_load,
) -> dict[Case, list[Result]]:
    """A 1 s warm-up of each case, then `rounds` interleaved rounds of `seconds` each."""

    def load(case: Case, duration: float) -> Result:
        return runner(case.url, connections, duration, paths=case.paths, headers=HEADERS)

    for case in all_cases:
        load(case, 1)
    runs: dict[Case, list[Result]] = {case: [] for case in all_cases}
    for number in range(rounds):
        for case in round_order(all_cases, number):
            runs[case].append(load(case, seconds))
    return runs


def best(results: Sequence[Result]) -> Result:
    return max(results, key=lambda result: result.rps)


def compare(runs: Mapping[Case, Sequence[Result]]) -> list[Comparison]:
    by_key = {(case.endpoint, case.target): results for case, results in runs.items()}
    comparisons = []
    for endpoint in ENDPOINTS:
        legacy, drf = by_key[(endpoint, "legacy")], by_key[(endpoint, "drf")]
        ratios = tuple(d.rps / leg.rps for leg, d in zip(legacy, drf, strict=True))
        comparisons.append(Comparison(endpoint, best(legacy), best(drf), ratios))
    return comparisons


def table(runs: Mapping[Case, Sequence[Result]]) -> str:
    """One line per endpoint and target: best round's req/s, p50, p99, errors of all rounds."""
    lines = [f"{'endpoint':<32} {'target':<13} {'req/s':>8} {'p50':>9} {'p99':>9} {'errors':>7}"]
    for case, results in runs.items():
        top = best(results)
        target = case.target if case.target in GATEWAYS else f"{case.target}*"
        lines.append(
            f"{case.endpoint:<32} {target:<13} {top.rps:>8.0f} {top.p50_ms:>7.2f}ms "
            f"{top.p99_ms:>7.2f}ms {sum(r.errors for r in results):>7}"
        )
    lines.append(
        "* a source system direct, same ids, no gateway (a gateway's GET /bookings/<id> calls"
        " both);\n  crm has no record of every 10th booking: its errors are those 404s"
    )
    return "\n".join(lines)


def verdict(comparisons: Sequence[Comparison]) -> str:
    """The DRF/legacy ratio per endpoint against the target, PASS or FAIL, and an overall line."""
    lines = [f"DRF/legacy throughput (median of per-round ratios; target >= {TARGET_RATIO:.2f}):"]
    for item in comparisons:
        rounds = " ".join(f"{ratio:.2f}" for ratio in item.ratios)
        lines.append(
            f"  {item.endpoint:<32} {item.ratio:.3f}  {'PASS' if item.passed else 'FAIL'}"
            f"  (rounds: {rounds}; ratio of best rounds {item.ratio_of_best:.3f})"
        )
    overall = all(item.passed for item in comparisons)
    lines.append(f"gateways: {'PASS' if overall else 'FAIL'}")
    return "\n".join(lines)


def report(
    runs: Mapping[Case, Sequence[Result]],
    comparisons: Sequence[Comparison],
    settings: Mapping[str, object],
) -> dict[str, object]:
    """The JSON written to bench/results/gateways.json."""
    endpoints: dict[str, dict[str, object]] = {name: {} for name in ENDPOINTS}
    sources: dict[str, object] = {}
    for case, results in runs.items():
        entry = {**asdict(best(results)), "rps_per_round": [r.rps for r in results]}
        entry["errors"] = sum(r.errors for r in results)
        if case.target in GATEWAYS:
            endpoints[case.endpoint][case.target] = entry
        else:
            sources[case.target] = {"endpoint": case.endpoint, **entry}
    for item in comparisons:
        endpoints[item.endpoint].update(
            drf_vs_legacy=item.ratio,
            ratio_per_round=list(item.ratios),
            ratio_of_best=item.ratio_of_best,
            passed=item.passed,
        )
    return {
        **settings,
        "target_ratio": TARGET_RATIO,
        "endpoints": endpoints,
        "sources_direct": sources,
        "passed": all(item.passed for item in comparisons),
    }


def start(stack: Stack, config: StackConfig) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    for name in SOURCE_SYSTEMS:
        stack.start(source_system(config, name))
    stack.start(gunicorn(config, "legacy", "legacy_flask:create_app()"))
    stack.start(gunicorn(config, "drf", "drf_app.wsgi:application"))


def run(
    seconds: float, rounds: int, workers: int, connections: int, output: Path | None = None
) -> int:
    """Start the stack in a temporary directory, measure, print and write the report."""
    output = output or RESULTS / "gateways.json"
    with tempfile.TemporaryDirectory(prefix="strangler-bench-gateways-") as tmp:
        config = free_config(Path(tmp) / "data", workers)
        with Stack(cwd=ROOT, log_dir=Path(tmp) / "logs", base_env=environment()) as stack:
            start(stack, config)
            all_cases = cases(config)
            for case in all_cases:
                check(case)
            runs = measure(all_cases, seconds, rounds, connections)
    comparisons = compare(runs)
    settings = {
        "seconds": seconds,
        "rounds": rounds,
        "gunicorn_workers": workers,
        "connections": connections,
        "load": f"wrk -t1 -c{connections}, X-Application-Key, cycling through the endpoint's ids",
        "rps": "best round",
        "ratio": "median of per-round DRF/legacy ratios",
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report(runs, comparisons, settings), indent=2) + "\n")
    print(f"gateways under gunicorn, {workers} workers each; wrk -t1 -c{connections}, "
          f"{rounds} rounds of {seconds:g}s")  # fmt: skip
    print(table(runs))
    print(verdict(comparisons))
    print(f"written: {output}")
    return 0


def environment() -> dict[str, str]:
    """The caller's environment with the benchmark's API key accepted by both gateways."""
    return {**os.environ, "API_KEYS": API_KEY}
