"""`python -m bench proxy`: direct vs proxy vs nginx, at concurrency 32 and 1, in one run.

A static nginx (1 worker) is the backend. In front of it, on their own ports: our proxy
(`python -m proxy serve`, one worker, access log off) and nginx as a reverse proxy (1 worker,
upstream keepalive). wrk (1 thread) measures each, in interleaved rounds; the best round of
each counts, since other processes on the machine only ever slow a round down. Each proxy's CPU
time per request (from /proc) is reported too: unlike requests/s it hardly depends on what else
the machine is doing. Results: a table on stdout and bench/results/latest.json.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import nginx
from bench.load import Result, run_load
from stack.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# nginx: production settings (proxy_buffering on); nginx-unbuffered: proxy_buffering off, the
# reference of earlier runs, still reported.
TARGETS = ("direct", "proxy", "nginx", "nginx-unbuffered")
REFERENCES = ("nginx", "nginx-unbuffered")
PROXY_ENV = {**os.environ, "STRANGLER_ACCESS_LOG": "0"}
TARGET_RPS_RATIO = 0.65  # a proxy worker's requests/s over an nginx worker's, at c32 (median)
TARGET_ADDED_P50_MS = 0.10  # what the proxy may add to the median latency at c1
TARGET_CPU_RATIO = 1.5  # the proxy's CPU per request over nginx's


def proxy_command(directory: Path, port: int, upstream: int) -> list[str]:
    """Write a one-backend routes.yaml in `directory`; the command line serving it on `port`.

    Run it with PROXY_ENV (access log off, as nginx's is).
    """
    routes = directory / "routes.yaml"
    routes.write_text(
        f"version: 1\nbackends:\n  app:\n    url: http://127.0.0.1:{upstream}\ndefault: app\n"
    )
    return [
        sys.executable, "-m", "proxy", "serve", "--routes", str(routes),
        "--port", str(port), "--admin-port", str(free_port()),
    ]  # fmt: skip


def start_proxy(directory: Path, port: int, upstream: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(proxy_command(directory, port, upstream), cwd=ROOT, env=PROXY_ENV)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def best(runs: list[Result]) -> Result:
    """The run with the most requests/s: other processes on the machine only ever slow one down."""
    return max(runs, key=lambda run: run.rps)


Runs = dict[str, dict[str, list[Result]]]


def measure(
    ports: dict[str, int], pids: dict[str, int], seconds: float, rounds: int
) -> tuple[Runs, dict[str, float]]:
    """Interleaved rounds (direct, proxy, nginx, ..., direct, ...), every round kept; CPU
    us/request (the median of the rounds)."""
    urls = {name: f"http://127.0.0.1:{port}/bookings/1?expand=all" for name, port in ports.items()}
    runs: Runs = {name: {"c32": [], "c1": []} for name in ports}
    cpu: dict[str, list[float]] = {name: [] for name in pids}
    for url in urls.values():
        run_load(url, 32, 1)
    for _ in range(rounds):
        for name, url in urls.items():
            before = cpu_seconds(pids[name]) if name in pids else 0.0
            result = run_load(url, 32, seconds)
            if name in pids:
                requests = result.rps * seconds
                cpu[name].append((cpu_seconds(pids[name]) - before) / requests * 1e6)
            runs[name]["c32"].append(result)
        for name, url in urls.items():
            runs[name]["c1"].append(run_load(url, 1, seconds / 2))
    return runs, {name: statistics.median(values) for name, values in cpu.items()}


def bests(runs: Runs) -> dict[str, dict[str, Result]]:
    return {name: {load: best(r) for load, r in by.items()} for name, by in runs.items()}


def median_ratio(runs: Runs, name: str, reference: str) -> float:
    """The median over the rounds of `name`'s c32 requests/s over `reference`'s, same round."""
    pairs = zip(runs[name]["c32"], runs[reference]["c32"], strict=True)
    return statistics.median(ours.rps / theirs.rps for ours, theirs in pairs)


def min_p50(by_load: dict[str, Result]) -> float:
    return by_load["c1"].p50_ms


def summary(runs: Runs, cpu: dict[str, float]) -> dict[str, float]:
    """The proxy against nginx as in production (`nginx`) and with buffering off."""
    results = bests(runs)
    direct = min_p50(results["direct"])
    figures = {"proxy_added_p50_ms_c1": min_p50(results["proxy"]) - direct}
    for reference in REFERENCES:
        key = reference.replace("-", "_")
        figures[f"proxy_vs_{key}_rps"] = median_ratio(runs, "proxy", reference)
        figures[f"proxy_vs_{key}_cpu"] = cpu["proxy"] / cpu[reference]
        figures[f"{key}_added_p50_ms_c1"] = min_p50(results[reference]) - direct
    return figures


def verdict(summary: dict[str, float]) -> list[str]:
    """Each target of the proxy (issue 17, against nginx as in production) with PASS or FAIL,
    and an overall line."""
    rps, p50 = summary["proxy_vs_nginx_rps"], summary["proxy_added_p50_ms_c1"]
    cpu = summary["proxy_vs_nginx_cpu"]
    checks = [
        (f"throughput >= {TARGET_RPS_RATIO:.2f} x nginx", rps, rps >= TARGET_RPS_RATIO),
        (f"added p50 at c1 <= {TARGET_ADDED_P50_MS} ms", p50, p50 <= TARGET_ADDED_P50_MS),
        (f"CPU/request <= {TARGET_CPU_RATIO} x nginx", cpu, cpu <= TARGET_CPU_RATIO),
    ]
    lines = [f"  {name:<32} {value:.3f}  {'PASS' if ok else 'FAIL'}" for name, value, ok in checks]
    overall = all(ok for _, _, ok in checks)
    return ["proxy targets:", *lines, f"proxy: {'PASS' if overall else 'FAIL'}"]


def table(results: dict[str, dict[str, Result]]) -> str:
    lines = [
        f"{'target':<16} {'rps c32':>10} {'p50 c32':>9} {'p99 c32':>9} "
        f"{'rps c1':>9} {'p50 c1':>8} {'p99 c1':>8} {'errors':>7}"
    ]
    for name, by_load in results.items():
        c32, c1 = by_load["c32"], by_load["c1"]
        lines.append(
            f"{name:<16} {c32.rps:>10.0f} {c32.p50_ms:>7.3f}ms {c32.p99_ms:>7.3f}ms "
            f"{c1.rps:>9.0f} {c1.p50_ms:>6.3f}ms {c1.p99_ms:>6.3f}ms {c32.errors + c1.errors:>7}"
        )
    return "\n".join(lines)


def start_all(directory: Path, ports: dict[str, int]) -> dict[str, subprocess.Popen[bytes]]:
    """The static backend, then the proxies in front of it."""
    procs = {"direct": nginx.start_static(directory, ports["direct"])}
    wait_port(ports["direct"])
    upstream = ports["direct"]
    procs["nginx"] = nginx.start_proxy(directory, ports["nginx"], upstream)
    unbuffered = nginx.start_proxy(directory, ports["nginx-unbuffered"], upstream, buffering=False)
    procs["nginx-unbuffered"] = unbuffered
    procs["proxy"] = start_proxy(directory, ports["proxy"], upstream)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(seconds: float, rounds: int) -> int:
    """Start the targets in a temporary directory, measure, print and write the report."""
    with tempfile.TemporaryDirectory(prefix="strangler-bench-") as tmp:
        ports = {name: free_port() for name in TARGETS}
        procs = start_all(Path(tmp), ports)
        try:
            for port in ports.values():
                wait_port(port)
            pids = {name: proc.pid for name, proc in procs.items() if name != "direct"}
            runs, cpu = measure(ports, pids, seconds, rounds)
        finally:
            stop(list(procs.values()))
    figures = summary(runs, cpu)
    results = bests(runs)
    report = {
        "seconds": seconds,
        "rounds": rounds,
        "load": "wrk -t1, concurrency 32 and 1",
        "hot_path": hot_path_mode(),
        "results": {n: {k: asdict(r) for k, r in by.items()} for n, by in results.items()},
        "summary": figures,
        "cpu_us_per_request": cpu,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"hot path: {report['hot_path']}")
    print(table(results))
    for key, value in figures.items():
        print(f"{key}: {value:.3f}")
    for name, micros in cpu.items():
        print(f"{name} CPU per request: {micros:.1f} us")
    print("\n".join(verdict(figures)))
    print(f"written: {RESULTS / 'latest.json'}")
    return 0


def hot_path_mode() -> str:
    """How the proxy processes run the hot path (the same environment as PROXY_ENV)."""
    command = [sys.executable, "-c", "import proxy; print(proxy.HOT_PATH_MODE)"]
    done = subprocess.run(command, cwd=ROOT, env=PROXY_ENV, capture_output=True, text=True)
    return done.stdout.strip() or f"unknown ({done.stderr.strip()[-200:]})"
