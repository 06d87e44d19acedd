"""`bench.streaming`: a 1 GiB download direct, through our proxy and through nginx.

A static nginx (`sendfile on`) serves a 1 GiB file, sparse (`truncate`), from a temporary
directory. In front of it, on their own ports: our proxy (`python -m proxy serve`, one worker,
access log off) and nginx as a reverse proxy as in production, buffering on, with 64 KiB buffers
and no temporary file (`bench.nginx.STREAM_PROXY` says why). curl downloads the file from each
(`-o /dev/null`), in interleaved rounds whose order turns by one each round; a download that is
not exactly 1 GiB stops the benchmark.

Targets (issue 17), each with a PASS/FAIL line:

- `proxy_vs_nginx_rate`: our proxy's download rate over nginx's, the median of the per-round
  ratios (target: at least 0.7);
- `proxy_rss_growth_mib`: how far the proxy's peak RSS (VmHWM) rose over its RSS after one small
  warm-up request (target: under 40 MiB, the bound tests/proxy/test_server.py sets for
  2 x 256 MiB streamed: "memory bounded as today").

Also reported, without a target: each proxy's CPU seconds per GiB (the median of the rounds)
and their ratio, and nginx's RSS growth. Results: a table on stdout and
bench/results/streaming.json.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench import nginx
from bench.load import apt_install
from bench.proxy import RESULTS, cpu_seconds, hot_path_mode, start_proxy, stop
from stack.ports import free_port, wait_port

GIB = 1 << 30
SIZE = GIB  # bytes downloaded from each target in a round
FILE, WARM = "big", "warm"  # the 1 GiB file and a small one, for the warm-up request
TARGETS = ("direct", "proxy", "nginx")
PROXIES = ("proxy", "nginx")  # CPU and memory are read from these processes
TARGET_RATE_RATIO = 0.7  # the proxy's download rate over nginx's (median of rounds)
TARGET_RSS_GROWTH_MIB = 40.0  # as tests/proxy/test_server.py asserts for 2 x 256 MiB
DOWNLOAD_TIMEOUT = 120  # seconds a download may take (curl --max-time)

Rates = dict[str, list[float]]  # bytes/s of each round, by target


def curl_command() -> list[str]:
    """The download: the body to /dev/null, curl's rate and size on stdout."""
    curl = apt_install("curl", "curl")
    if curl is None:
        raise RuntimeError("curl is not installed and could not be installed")
    return [
        curl, "-s", "-o", "/dev/null", "--max-time", str(DOWNLOAD_TIMEOUT),
        "-w", "%{speed_download} %{size_download}",
    ]  # fmt: skip


def parse_curl(output: str) -> tuple[float, int]:
    """Bytes/s and bytes from `-w '%{speed_download} %{size_download}'`.

    `"536870912 1073741824"` -> `(536870912.0, 1073741824)`; a rate with decimals is read too:
    `"1073741824.000 1073741824"` -> `(1073741824.0, 1073741824)`.
    """
    rate, size = output.split()
    return float(rate), int(size)


def fetch(url: str) -> tuple[float, int]:
    """Bytes/s and bytes of one download of `url`; RuntimeError if curl fails."""
    done = subprocess.run([*curl_command(), url], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"curl {url} failed with exit status {done.returncode}")
    return parse_curl(done.stdout)


def download(url: str) -> float:
    """Bytes/s of one download of `url`; RuntimeError unless it was exactly SIZE bytes."""
    rate, size = fetch(url)
    if size != SIZE:
        raise RuntimeError(f"curl {url}: {size} bytes, not {SIZE}")
    return rate


def status_mib(status: str, field: str) -> float:
    """A `kB` field of /proc/<pid>/status in MiB: `"VmHWM:\\t  51200 kB"`, VmHWM -> 50.0."""
    found = re.search(rf"^{field}:\s+(\d+) kB$", status, re.M)
    if found is None:
        raise ValueError(f"no {field} in the process status")
    return int(found.group(1)) / 1024


def memory_mib(pid: int, field: str) -> float:
    return status_mib(Path(f"/proc/{pid}/status").read_text(), field)


def turned(names: tuple[str, ...], round_: int) -> tuple[str, ...]:
    """The order of round `round_`: ("a", "b", "c"), 1 -> ("b", "c", "a")."""
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def measure(
    urls: dict[str, str], pids: dict[str, int], rounds: int
) -> tuple[Rates, dict[str, float]]:
    """A download from each target to warm up, then `rounds` interleaved rounds; the rates of
    each round, and each proxy's CPU seconds per GiB (the median of the rounds)."""
    for url in urls.values():
        download(url)
    rates: Rates = {name: [] for name in urls}
    cpu: dict[str, list[float]] = {name: [] for name in pids}
    for round_ in range(rounds):
        for name in turned(tuple(urls), round_):
            before = cpu_seconds(pids[name]) if name in pids else 0.0
            rates[name].append(download(urls[name]))
            if name in pids:
                cpu[name].append((cpu_seconds(pids[name]) - before) * GIB / SIZE)
    return rates, {name: statistics.median(values) for name, values in cpu.items()}


def median_ratio(rates: Rates, name: str, reference: str) -> float:
    """The median over the rounds of `name`'s rate over `reference`'s, same round."""
    pairs = zip(rates[name], rates[reference], strict=True)
    return statistics.median(ours / theirs for ours, theirs in pairs)


def summary(rates: Rates, cpu: dict[str, float], growth: dict[str, float]) -> dict[str, float]:
    return {
        "proxy_vs_nginx_rate": median_ratio(rates, "proxy", "nginx"),
        "proxy_rss_growth_mib": growth["proxy"],
        "nginx_rss_growth_mib": growth["nginx"],
        "proxy_cpu_s_per_gib": cpu["proxy"],
        "nginx_cpu_s_per_gib": cpu["nginx"],
        "proxy_vs_nginx_cpu": cpu["proxy"] / cpu["nginx"],
    }


def verdict(summary: dict[str, float]) -> list[str]:
    """Each streaming target of issue 17 with PASS or FAIL, and an overall line."""
    rate, growth = summary["proxy_vs_nginx_rate"], summary["proxy_rss_growth_mib"]
    checks = [
        (f"rate >= {TARGET_RATE_RATIO:.2f} x nginx", rate, rate >= TARGET_RATE_RATIO),
        (f"RSS growth < {TARGET_RSS_GROWTH_MIB:.0f} MiB", growth, growth < TARGET_RSS_GROWTH_MIB),
    ]
    lines = [f"  {name:<32} {value:.3f}  {'PASS' if ok else 'FAIL'}" for name, value, ok in checks]
    overall = all(ok for _, _, ok in checks)
    return ["streaming targets:", *lines, f"streaming: {'PASS' if overall else 'FAIL'}"]


def table(rates: Rates, cpu: dict[str, float], growth: dict[str, float]) -> str:
    """MiB/s (the best and the median round), CPU s/GiB and RSS growth of each target."""
    lines = [
        f"{'target':<8} {'best MiB/s':>11} {'median MiB/s':>13} {'CPU s/GiB':>10} {'RSS +MiB':>9}"
    ]
    for name, values in rates.items():
        cpu_text = f"{cpu[name]:>10.3f}" if name in cpu else f"{'-':>10}"
        rss_text = f"{growth[name]:>9.1f}" if name in growth else f"{'-':>9}"
        lines.append(
            f"{name:<8} {max(values) / 2**20:>11.0f} {statistics.median(values) / 2**20:>13.0f}"
            f" {cpu_text} {rss_text}"
        )
    return "\n".join(lines)


def serve_files(directory: Path) -> Path:
    """The files the static nginx serves: SIZE bytes, sparse, and a small one."""
    root = directory / "files"
    root.mkdir()
    subprocess.run(["truncate", "-s", str(SIZE), str(root / FILE)], check=True)
    (root / WARM).write_bytes(b"w" * 4096)
    return root


def start_all(directory: Path, ports: dict[str, int]) -> dict[str, subprocess.Popen[bytes]]:
    """The file server, then the two proxies in front of it."""
    procs = {"direct": nginx.start_files(directory, ports["direct"], serve_files(directory))}
    wait_port(ports["direct"])
    procs["nginx"] = nginx.start_stream_proxy(directory, ports["nginx"], ports["direct"])
    procs["proxy"] = start_proxy(directory, ports["proxy"], ports["direct"])
    return procs


def baselines(ports: dict[str, int], pids: dict[str, int]) -> dict[str, float]:
    """Each proxy's RSS (MiB) after one small request through it, as the test takes it."""
    for name in pids:
        fetch(f"http://127.0.0.1:{ports[name]}/{WARM}")
    return {name: memory_mib(pid, "VmRSS") for name, pid in pids.items()}


def run(rounds: int) -> int:
    """Start the targets in a temporary directory, measure, print and write the report."""
    with tempfile.TemporaryDirectory(prefix="strangler-streaming-") as tmp:
        ports = {name: free_port() for name in TARGETS}
        procs = start_all(Path(tmp), ports)
        try:
            for port in ports.values():
                wait_port(port)
            pids = {name: procs[name].pid for name in PROXIES}
            before = baselines(ports, pids)
            urls = {name: f"http://127.0.0.1:{port}/{FILE}" for name, port in ports.items()}
            rates, cpu = measure(urls, pids, rounds)
            growth = {name: memory_mib(pid, "VmHWM") - before[name] for name, pid in pids.items()}
        finally:
            stop(list(procs.values()))
    figures = summary(rates, cpu, growth)
    report = {
        "rounds": rounds,
        "bytes": SIZE,
        "client": "curl -o /dev/null",
        "nginx": "proxy_buffering on; proxy_buffer_size 64k; proxy_buffers 8 64k; "
        "proxy_busy_buffers_size 128k; proxy_max_temp_file_size 0",
        "hot_path": hot_path_mode(),
        "bytes_per_second": rates,
        "rss_before_mib": before,
        "summary": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "streaming.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"hot path: {report['hot_path']}")
    print(table(rates, cpu, growth))
    for key, value in figures.items():
        print(f"{key}: {value:.3f}")
    print("\n".join(verdict(figures)))
    print(f"written: {RESULTS / 'streaming.json'}")
    return 0
