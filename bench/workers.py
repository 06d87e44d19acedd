"""The `--workers 2` benchmark: is the load split evenly, and does /metrics count it once?

Issue 17's target: with `--workers 2`, each worker serves between 40% and 60% of a run's
requests (SO_REUSEPORT spreads them), and the merged metrics count every request once.

A static nginx is the backend; in front of it `python -m proxy serve --workers 2` and, for the
throughput comparison, `--workers 1` (both with the access log off). Each round:

1. `connections` fresh keep-alive connections to the two-worker proxy, opened together, and
   exactly `per_connection` GETs on each, one after the other (`send_per_connection`), so every
   request sent is answered. Then each worker's own count (strangler_requests_total in its
   value file, `counter_<pid>.db`) and the merged count (GET /metrics on the admin port), once
   they have settled: a worker writes its counts to its file every FLUSH_SECONDS.
2. wrk (1 thread, as many connections, `seconds`) against `--workers 1` and `--workers 2`:
   requests/s side by side (on 2 cores shared with wrk and nginx a second worker cannot scale;
   the ratio is reported, not judged), and how far /metrics is ahead of wrk's own count.

Why an exact number of requests and not wrk's count: wrk stops at its deadline with a request
in flight on most connections, and counts only completed responses. The proxy answers and
counts those requests anyway, so /metrics is ahead of wrk by up to `connections` (the `wrk gap`
column: 195 to 256 at 256 connections in one run). Only a bounded load makes "every request
counted once" an exact check.

Why as many requests on each connection: SO_REUSEPORT gives each connection to one worker, by a
hash of its addresses, and the connection stays there. With the same number of requests on
each, a worker's share of the requests is its share of the connections, whatever CPU the other
processes of the machine leave it. (With a load that sends more on the connections answered
faster, as wrk does, a worker slowed by a neighbour serves less: 0.415 in one round of a trial.)
Why 256 connections: a worker's share of n connections is binomial (two SO_REUSEPORT listeners
given 256 connections 200 times: standard deviation 8.1 connections, binomial's 8.0); at
n = 128 it falls outside [0.40, 0.60] in about 2.7% of rounds by chance alone, at n = 256 in
about 0.14%. The backend's
pool may hold POOL_SIZE connections per worker: at the default, 100, a worker given more than
100 of the connections would answer some requests 503.

The supervisor makes the workers' PROMETHEUS_MULTIPROC_DIR with `tempfile.mkdtemp`, in TMPDIR:
the bench gives it a TMPDIR of its own, where that directory is the only entry. Results: a
table on stdout and bench/results/workers.json.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from bench import nginx
from bench.instructions import REQUEST, complete_response
from bench.load import run_load
from bench.proxy import PROXY_ENV, RESULTS, ROOT, hot_path_mode, stop
from proxy.observe.metrics import FLUSH_SECONDS
from stack.ports import free_port, wait_port

CONNECTIONS = 256
PER_CONNECTION = 80  # requests on each connection of a round: 20480 a round
SHARE_LOW, SHARE_HIGH = 0.40, 0.60  # each worker's share of a round's requests (issue 17)
WORKERS = 2
POOL_SIZE = 1024  # the backend's max_connections, per worker: above any load's connections
REQUESTS_METRIC = "strangler_requests_total"
SETTLE_SECONDS = 2 * FLUSH_SECONDS  # two equal reads this far apart: every worker has flushed
SETTLE_TRIES = 20
METRICS_PREFIX = "strangler-metrics-"  # proxy.server.supervise's mkdtemp prefix
PATH = "/bookings/1?expand=all"


@dataclass(frozen=True)
class Counts:
    """strangler_requests_total so far: each worker's own value (by pid), and /metrics' sum."""

    workers: dict[int, int]
    merged: int

    def since(self, before: Counts) -> Counts:
        """What was counted between `before` and these counts."""
        workers = {pid: n - before.workers.get(pid, 0) for pid, n in self.workers.items()}
        return Counts(workers, self.merged - before.merged)


@dataclass(frozen=True)
class Round:
    """One round: the bounded load's split and counts, then wrk against both proxies."""

    sent: int
    served: dict[int, int]  # by worker pid: its own count of the `sent` requests
    merged: int  # /metrics' count of the `sent` requests
    rps_one: float  # wrk against --workers 1
    rps_two: float  # wrk against --workers 2
    wrk_completed: int  # what wrk counted in its run against --workers 2
    wrk_counted: int  # what /metrics counted in that run

    def shares(self) -> dict[int, float]:
        return {pid: served / self.sent for pid, served in self.served.items()}


@dataclass(frozen=True)
class Pool:
    """The `--workers 2` proxy as the bench reads it."""

    port: int
    admin_port: int
    metrics: Path  # its PROMETHEUS_MULTIPROC_DIR
    pids: tuple[int, ...]


def requests_total(families: Iterable[Metric]) -> int:
    """The sum of strangler_requests_total over all its label sets."""
    values = (s.value for f in families for s in f.samples if s.name == REQUESTS_METRIC)
    return round(sum(values))


def worker_requests(value_file: Path) -> int:
    """strangler_requests_total of one worker, from its own `counter_<pid>.db` alone (0 while
    the worker has counted nothing and so has no file)."""
    if not value_file.exists():
        return 0
    families: Iterable[Metric] = MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
        [str(value_file)]
    )
    return requests_total(families)


def merged_requests(admin_port: int) -> int:
    """strangler_requests_total summed over the workers by the admin port's /metrics."""
    url = f"http://127.0.0.1:{admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return requests_total(text_string_to_metric_families(text))


def read_counts(pool: Pool) -> Counts:
    workers = {pid: worker_requests(pool.metrics / f"counter_{pid}.db") for pid in pool.pids}
    return Counts(workers, merged_requests(pool.admin_port))


def settled(read: Callable[[], Counts], pause: float = SETTLE_SECONDS) -> Counts:
    """Counts once two reads `pause` apart agree (the last read after SETTLE_TRIES)."""
    last = read()
    for _ in range(SETTLE_TRIES):
        time.sleep(pause)
        current = read()
        if current == last:
            return current
        last = current
    return last


def listeners(proc_net_tcp: str, port: int) -> int:
    """How many sockets listen on `port`, from /proc/net/tcp's text (one per SO_REUSEPORT
    worker)."""
    count = 0
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        count += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port
    return count


def wait_listeners(port: int, count: int, timeout: float = 30.0) -> None:
    """Return once `count` sockets listen on `port`: until then the kernel gives every
    connection to the workers that do."""
    deadline = time.monotonic() + timeout
    while listeners(Path("/proc/net/tcp").read_text(), port) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} listeners on 127.0.0.1:{port}")
        time.sleep(0.05)


def children(pid: int) -> tuple[int, ...]:
    """The child processes of `pid` (the workers of a supervisor), in pid order."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return tuple(sorted(int(child) for child in text.split()))


def metrics_directory(tmpdir: Path) -> Path:
    """The supervisor's PROMETHEUS_MULTIPROC_DIR: the one `strangler-metrics-*` in its TMPDIR."""
    found = sorted(tmpdir.glob(f"{METRICS_PREFIX}*"))
    if len(found) != 1:
        raise RuntimeError(f"expected one {METRICS_PREFIX}* directory in {tmpdir}, got {found}")
    return found[0]


def admin_port(command: Sequence[str]) -> int:
    """The `--admin-port` of a `proxy serve` command line."""
    return int(command[command.index("--admin-port") + 1])


def serve_command(directory: Path, port: int, upstream: int, workers: int) -> list[str]:
    """Write a one-backend routes-workers.yaml in `directory`; the command line serving it on
    `port` with `workers` workers. The backend's pool may hold POOL_SIZE connections: at the
    default (100 per worker) a load of CONNECTIONS would be answered 503 once it is full."""
    routes = directory / "routes-workers.yaml"
    routes.write_text(
        f"version: 1\nbackends:\n  app:\n    url: http://127.0.0.1:{upstream}\n"
        f"    max_connections: {POOL_SIZE}\ndefault: app\n"
    )
    return [
        sys.executable, "-m", "proxy", "serve", "--routes", str(routes), "--port", str(port),
        "--admin-port", str(free_port()), "--workers", str(workers),
    ]  # fmt: skip


def pool_env(directory: Path) -> dict[str, str]:
    """PROXY_ENV with TMPDIR at `directory`'s `supervisor-tmp`, where the supervisor will make
    its metrics directory."""
    tmpdir = directory / "supervisor-tmp"
    tmpdir.mkdir(exist_ok=True)
    return {**PROXY_ENV, "TMPDIR": str(tmpdir)}


def ready_pool(supervisor: int, command: Sequence[str], env: Mapping[str, str]) -> Pool:
    """The pool that `command` started as `supervisor`, once both workers listen."""
    port = int(command[command.index("--port") + 1])
    wait_listeners(port, WORKERS)
    pids = children(supervisor)
    if len(pids) != WORKERS:
        raise RuntimeError(f"expected {WORKERS} workers, found {pids}")
    wait_port(admin_port(command))
    return Pool(port, admin_port(command), metrics_directory(Path(env["TMPDIR"])), pids)


def take_answers(buffer: bytearray) -> int:
    """Remove the complete 200 answers at the start of `buffer`; how many there were (an
    answer of another status raises, see `complete_response`)."""
    answers = 0
    while (size := complete_response(buffer)) is not None:
        del buffer[:size]
        answers += 1
    return answers


def send_per_connection(port: int, connections: int, each: int) -> int:
    """Open `connections` keep-alive connections, then send `each` GETs on every one, the next
    once the previous is answered; the number of requests sent and answered."""
    selector = selectors.DefaultSelector()
    left: dict[socket.socket, int] = {}
    buffers: dict[socket.socket, bytearray] = {}
    to_go = connections * each
    try:
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port))
            left[sock], buffers[sock] = each, bytearray()
            selector.register(sock, selectors.EVENT_READ)
        for sock in left:
            sock.sendall(REQUEST)
        while to_go:
            ready = selector.select(timeout=60)
            if not ready:
                raise TimeoutError(f"no answer for 60 s, {to_go} requests to go")
            for key, _ in ready:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = conn.recv(65536)
                if not data:
                    raise ConnectionError("the proxy closed a keep-alive connection")
                buffers[conn] += data
                answers = take_answers(buffers[conn])
                left[conn] -= answers
                to_go -= answers
                if answers and left[conn]:
                    conn.sendall(REQUEST)
    finally:
        for sock in left:
            selector.unregister(sock)
            sock.close()
    return connections * each


def one_round(
    pool: Pool, one_port: int, before: Counts, per_connection: int, connections: int, seconds: float
) -> tuple[Round, Counts]:
    """A round (see the module docstring); the counts after it, the next round's `before`."""
    read = partial(read_counts, pool)
    requests = send_per_connection(pool.port, connections, per_connection)
    bounded = settled(read)
    one = run_load(f"http://127.0.0.1:{one_port}{PATH}", connections, seconds)
    two = run_load(f"http://127.0.0.1:{pool.port}{PATH}", connections, seconds)
    after = settled(read)
    sent = bounded.since(before)
    result = Round(
        sent=requests,
        served=sent.workers,
        merged=sent.merged,
        rps_one=one.rps,
        rps_two=two.rps,
        wrk_completed=two.requests,
        wrk_counted=after.since(bounded).merged,
    )
    return result, after


def measure(
    directory: Path,
    seconds: float,
    rounds: int,
    *,
    per_connection: int = PER_CONNECTION,
    connections: int = CONNECTIONS,
) -> tuple[Pool, list[Round]]:
    """Start the backend and both proxies in `directory`, run the rounds, stop them all."""
    upstream, one_port, two_port = free_port(), free_port(), free_port()
    procs = [nginx.start_static(directory, upstream)]
    try:
        wait_port(upstream)
        one = serve_command(directory, one_port, upstream, 1)
        procs.append(subprocess.Popen(one, cwd=ROOT, env=PROXY_ENV))
        command, env = serve_command(directory, two_port, upstream, WORKERS), pool_env(directory)
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env))
        pool = ready_pool(procs[-1].pid, command, env)
        wait_port(one_port)
        for port in (one_port, two_port):  # warm-up
            run_load(f"http://127.0.0.1:{port}{PATH}", connections, 1)
        before = settled(partial(read_counts, pool))
        results = []
        for _ in range(rounds):
            result, before = one_round(pool, one_port, before, per_connection, connections, seconds)
            results.append(result)
    finally:
        stop(procs)
    return pool, results


def worst_share(rounds: Sequence[Round]) -> float:
    """The share furthest from an even split, over every worker of every round."""
    shares = [share for r in rounds for share in r.shares().values()]
    return max(shares, key=lambda share: abs(share - 1 / WORKERS))


def worst_difference(differences: Iterable[int]) -> int:
    """The difference furthest from 0 (signed)."""
    return max(differences, key=abs)


def summary(rounds: Sequence[Round]) -> dict[str, float]:
    return {
        "worst_share": worst_share(rounds),
        "merged_minus_sent": worst_difference(r.merged - r.sent for r in rounds),
        "workers_minus_sent": worst_difference(sum(r.served.values()) - r.sent for r in rounds),
        "workers_2_vs_1_rps": statistics.median(r.rps_two / r.rps_one for r in rounds),
    }


def verdict(figures: Mapping[str, float]) -> list[str]:
    """Issue 17's workers target, in three checks with PASS or FAIL, and an overall line."""
    share = figures["worst_share"]
    merged, own = int(figures["merged_minus_sent"]), int(figures["workers_minus_sent"])
    checks = [
        (
            f"worker shares in [{SHARE_LOW:.2f}, {SHARE_HIGH:.2f}]",
            f"{share:.3f}",
            SHARE_LOW <= share <= SHARE_HIGH,
        ),
        ("/metrics count - requests sent", f"{merged:+d}", merged == 0),
        ("workers' own counts - sent", f"{own:+d}", own == 0),
    ]
    lines = [f"  {name:<32} {value}  {'PASS' if ok else 'FAIL'}" for name, value, ok in checks]
    overall = all(ok for _, _, ok in checks)
    return ["workers targets:", *lines, f"workers: {'PASS' if overall else 'FAIL'}"]


def table(rounds: Sequence[Round]) -> str:
    """One line per round; workers numbered in pid order."""
    lines = [
        f"{'round':<6} {'sent':>7} {'worker 1':>9} {'worker 2':>9} {'share 1':>8} "
        f"{'share 2':>8} {'/metrics':>9} {'rps w1':>8} {'rps w2':>8} {'w2/w1':>6} {'wrk gap':>8}"
    ]
    for index, r in enumerate(rounds, 1):
        served = [r.served[pid] for pid in sorted(r.served)]
        shares = [r.shares()[pid] for pid in sorted(r.served)]
        lines.append(
            f"{index:<6} {r.sent:>7} {served[0]:>9} {served[-1]:>9} {shares[0]:>8.3f} "
            f"{shares[-1]:>8.3f} {r.merged:>9} {r.rps_one:>8.0f} {r.rps_two:>8.0f} "
            f"{r.rps_two / r.rps_one:>6.2f} {r.wrk_counted - r.wrk_completed:>+8d}"
        )
    return "\n".join(lines)


def round_report(r: Round, per_connection: int) -> dict[str, object]:
    return {
        "sent": r.sent,
        "served": {str(pid): n for pid, n in r.served.items()},
        "connections": {str(pid): n / per_connection for pid, n in r.served.items()},
        "shares": {str(pid): share for pid, share in r.shares().items()},
        "merged": r.merged,
        "rps_workers_1": r.rps_one,
        "rps_workers_2": r.rps_two,
        "wrk_completed": r.wrk_completed,
        "wrk_counted_by_metrics": r.wrk_counted,
    }


def run(seconds: float, rounds: int) -> int:
    """Measure in a temporary directory, print the table and verdict, write the report."""
    with tempfile.TemporaryDirectory(prefix="strangler-bench-workers-") as tmp:
        pool, results = measure(Path(tmp), seconds, rounds)
    figures = summary(results)
    report = {
        "seconds": seconds,
        "rounds": rounds,
        "connections": CONNECTIONS,
        "requests_per_connection": PER_CONNECTION,
        "load": f"{PER_CONNECTION} GETs on each of {CONNECTIONS} connections, then wrk -t1 "
        f"-c{CONNECTIONS} against --workers 1 and 2",
        "hot_path": hot_path_mode(),
        "worker_pids": list(pool.pids),
        "rounds_detail": [round_report(r, PER_CONNECTION) for r in results],
        "summary": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"hot path: {report['hot_path']}; cores: {os.cpu_count()}")
    print(table(results))
    ratio = figures["workers_2_vs_1_rps"]
    print(f"workers_2_vs_1_rps: {ratio:.3f} (median of rounds; reported, not judged)")
    print("\n".join(verdict(figures)))
    print(f"written: {RESULTS / 'workers.json'}")
    return 0
