"""`python -m bench routing`: what a big routing table costs per request, counted by callgrind.

The same measure as `bench instructions` (our proxy under callgrind, `requests` GETs of
`/bookings/1?expand=all` over 32 keep-alive connections after a warm-up), once for each of two
tables in front of the same static nginx:

- `table7`: the seven resources of today's routes.yaml, no nested key;
- `table90`: 90 resources, 30 of them nested keys (`bookings/*/customers`, ...), ten first
  segments with nested keys, `bookings` among them, so that every request walks its trie; and
  the migration's features on a third of the others (`FEATURES`: canaries, shadows, guards), so
  that their per-table setup and per-request observers are in the count.

The admin side samples the metrics on timers (the dashboard every second, the lifecycle every
five), and that work grows with the table (90 resources: about 14 M instructions a second under
callgrind against 3 M for 7). It is paid per second, not per request; but callgrind slows the
proxy some fifty times, so in the measure it would land on each request fifty times over. So the
proxy runs as `python -m bench.quiet_proxy`, those two samplers stopped. What background is left
(the reload watcher, the guard's timer) is counted idle for `IDLE_SECONDS` first, and its rate
times the requests' wall time is taken out of their count; both figures are reported.

Target: `table90` within 5% of `table7` per request. Results: bench/results/routing.json.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import nginx
from bench.instructions import (
    CONNECTIONS,
    TOTALS,
    WARM_UP,
    callgrind,
    control,
    quiet,
    send_exactly,
)
from bench.proxy import PROXY_ENV, RESULTS, ROOT, proxy_command
from stack.ports import free_port, wait_port

TARGET_RATIO = 1.05
IDLE_SECONDS = 20.0  # the background's rate is measured over this long, before the requests
API = ("bookings", "customers", "departures", "tours", "itineraries", "itinerary_maps")
NESTED_UNDER = (*API, "accommodations", "payments", "invoices", "reviews")


def table7(upstream: int) -> str:
    """Today's table: the seven resources, on two backends (both the static nginx)."""
    names = (*API, "accommodations")
    lines = [f"  {name}: {'drf' if n % 2 else 'legacy'}" for n, name in enumerate(names)]
    return head(upstream) + "\n".join(lines) + "\n"


# Cycled over resource_00..52: a canary, a shadow, a guard, then three resources without any.
FEATURES = (
    "canary: {{backend: {other}, percent: 10}}",
    "shadow: {{backend: {other}}}",
    "guard: {{max_p99_ms: 250}}",
    None,
    None,
    None,
)


def table90(upstream: int) -> str:
    """60 resources (a third with a canary, a shadow or a guard) and 30 nested keys, three under
    each of ten first segments."""
    names = [*API, "accommodations"]
    lines = [f"  {name}: {'drf' if n % 2 else 'legacy'}" for n, name in enumerate(names)]
    for n in range(53):
        feature = FEATURES[n % len(FEATURES)]
        backend = "drf" if n % 2 else "legacy"
        other = "legacy" if n % 2 else "drf"
        extra = "" if feature is None else ", " + feature.format(other=other)
        lines.append(f"  resource_{n:02d}: {{backend: {backend}{extra}}}")
    for first in NESTED_UNDER:
        lines += [
            f"  {first}/*/customers: drf",
            f"  {first}/*/customers/*/notes: legacy",
            f"  {first}/search: drf",
        ]
    return head(upstream) + "\n".join(lines) + "\n"


def head(upstream: int) -> str:
    url = f"http://127.0.0.1:{upstream}"
    return (
        f"version: 1\nbackends:\n  legacy: {{url: '{url}'}}\n  drf: {{url: '{url}'}}\n"
        "default: legacy\nresources:\n"
    )


def count_apart(command: list[str], port: int, out: Path, requests: int) -> Figures:
    """Under callgrind (`out` its --callgrind-out-file): the background's instructions per second
    while idle, then the instructions of `requests` GETs and their wall time."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env=PROXY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, timeout=180)
        send_exactly(port, CONNECTIONS, WARM_UP)
        control(proc.pid, "-i", "on")
        time.sleep(IDLE_SECONDS)
        control(proc.pid, "-i", "off")
        control(proc.pid, "-d")
        control(proc.pid, "-i", "on")
        started = time.perf_counter()
        send_exactly(port, CONNECTIONS, requests)
        elapsed = time.perf_counter() - started
        control(proc.pid, "-i", "off")
        control(proc.pid, "-d")
    finally:
        proc.kill()
        proc.wait()
    idle, busy = (dump_total(out.with_name(f"{out.name}.{n}")) for n in (1, 2))
    return Figures(busy / requests, idle / IDLE_SECONDS, elapsed)


def dump_total(path: Path) -> int:
    found = TOTALS.search(path.read_bytes())
    if found is None:
        raise RuntimeError(f"no callgrind counts in {path}")
    return int(found.group(1))


@dataclass(frozen=True)
class Figures:
    raw: float  # instructions per request, the background's included
    background: float  # instructions per second while idle (samplers of the admin side)
    seconds: float  # wall time of the requests

    def per_request(self, requests: int) -> float:
        """Instructions per request with the background of that wall time taken out."""
        return self.raw - self.background * self.seconds / requests


def measure(directory: Path, requests: int) -> dict[str, Figures]:
    """Each table's figures for our proxy, in front of one static nginx."""
    upstream = free_port()
    static = nginx.start_static(directory, upstream)
    try:
        wait_port(upstream)
        figures = {}
        for name, text in (("table7", table7(upstream)), ("table90", table90(upstream))):
            port = free_port()
            here = directory / name
            here.mkdir()
            command = quiet(proxy_command(here, port, upstream))
            (here / "routes.yaml").write_text(text)  # the table replaces the one-backend file
            out = here / "proxy.callgrind"
            figures[name] = count_apart(callgrind(out) + command, port, out, requests)
        return figures
    finally:
        static.send_signal(signal.SIGTERM)
        static.wait(10)


def run(requests: int) -> dict[str, float]:
    """Count both tables, print the verdict and write bench/results/routing.json."""
    with tempfile.TemporaryDirectory(prefix="strangler-routing-") as tmp:
        figures = measure(Path(tmp), requests)
    per_request = {name: value.per_request(requests) for name, value in figures.items()}
    ratio = per_request["table90"] / per_request["table7"]
    report = {
        "requests": requests,
        "connections": CONNECTIONS,
        "instructions_per_request": {name: round(value) for name, value in per_request.items()},
        "table90_vs_table7": ratio,
        "raw_instructions_per_request": {name: round(f.raw) for name, f in figures.items()},
        "background_instructions_per_second": {
            name: round(f.background) for name, f in figures.items()
        },
        "request_seconds": {name: round(f.seconds, 2) for name, f in figures.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "routing.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"instructions per request ({requests} requests over {CONNECTIONS} connections):")
    print(f"  {'table':<8} {'per request':>12} {'raw':>12} {'background/s':>14}")
    for name, value in figures.items():
        print(
            f"  {name:<8} {per_request[name]:>12,.0f} {value.raw:>12,.0f}"
            f" {value.background:>14,.0f}"
        )
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"table90 / table7 per request: {ratio:.4f} (target <= {TARGET_RATIO:.2f})  {verdict}")
    print(f"written: {RESULTS / 'routing.json'}")
    return per_request
