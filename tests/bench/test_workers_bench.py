"""The workers benchmark's pure parts, a worker's real value file, its load against a real
loopback server, and one small real run (nginx and a `--workers 2` proxy, 1920 requests and
two 1 s wrk runs, about 12 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from bench import workers
from bench.load import parse
from bench.workers import (
    Counts,
    Round,
    admin_port,
    listeners,
    metrics_directory,
    requests_total,
    send_per_connection,
    serve_command,
    settled,
    summary,
    table,
    take_answers,
    verdict,
    worker_requests,
)
from proxy.routing.parser import load_table
from tests.support import free_port
from tests.support.counting_server import OK, counting_server

EXPOSITION = """\
# HELP strangler_requests_total Requests answered by the proxy.
# TYPE strangler_requests_total counter
strangler_requests_total{backend="app",code="200",method="GET",resource="other"} 1500.0
strangler_requests_total{backend="app",code="404",method="GET",resource="other"} 7.0
# HELP strangler_upstream_errors_total Failures talking to a backend.
# TYPE strangler_upstream_errors_total counter
strangler_upstream_errors_total{backend="app",kind="reset"} 3.0
# HELP strangler_request_duration_seconds Time from request received to response fully sent.
# TYPE strangler_request_duration_seconds histogram
strangler_request_duration_seconds_bucket{backend="app",le="+Inf",resource="other"} 1507.0
strangler_request_duration_seconds_count{backend="app",resource="other"} 1507.0
strangler_request_duration_seconds_sum{backend="app",resource="other"} 1.5
"""

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 101 1
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 102 1
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 103 1
   3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 104 1
"""

WRK_REPORT = """\
Running 4s test @ http://127.0.0.1:40001/bookings/1
  1 threads and 256 connections
  Latency Distribution
     50%    2.50ms
     75%    3.00ms
     90%    4.00ms
     99%   10.00ms
  38211 requests in 4.00s, 5.10MB read
Requests/sec:   9552.75
Transfer/sec:      1.27MB
"""


def a_round(served: dict[int, int], merged: int, sent: int = 1000) -> Round:
    return Round(
        sent=sent,
        served=served,
        merged=merged,
        rps_one=8000.0,
        rps_two=6000.0,
        wrk_completed=30000,
        wrk_counted=30128,
    )


def test_requests_total_sums_every_label_set_of_the_counter_only() -> None:
    assert requests_total(text_string_to_metric_families(EXPOSITION)) == 1507
    assert requests_total(text_string_to_metric_families("")) == 0


def write_counter(path: Path, values: dict[tuple[str, str], float]) -> None:
    """A worker's value file as prometheus_client writes it, `{(metric, code): value}`."""
    labels = ["resource", "backend", "method", "code"]
    store = MmapedDict(str(path))
    for (metric, code), value in values.items():
        key = mmap_key(metric, f"{metric}_total", labels, ["other", "app", "GET", code], "help")
        store.write_value(key, value, 0.0)
    store.close()


def test_worker_requests_reads_one_workers_value_file(tmp_path: Path) -> None:
    write_counter(tmp_path / "counter_101.db", {("strangler_requests", "200"): 600.0})
    values = {
        ("strangler_requests", "200"): 400.0,
        ("strangler_requests", "502"): 2.0,
        ("strangler_fallbacks", "200"): 9.0,
    }
    write_counter(tmp_path / "counter_102.db", values)
    assert worker_requests(tmp_path / "counter_101.db") == 600
    assert worker_requests(tmp_path / "counter_102.db") == 402
    assert worker_requests(tmp_path / "counter_103.db") == 0  # no request counted yet


def test_listeners_counts_the_listening_sockets_of_a_port() -> None:
    assert listeners(PROC_NET_TCP, 8080) == 2
    assert listeners(PROC_NET_TCP, 8081) == 1
    assert listeners(PROC_NET_TCP, 50000) == 0  # the connected socket's peer port


def test_metrics_directory_is_the_only_one_the_supervisor_made(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="expected one strangler-metrics-"):
        metrics_directory(tmp_path)
    (tmp_path / "strangler-metrics-abc").mkdir()
    (tmp_path / "other").mkdir()
    assert metrics_directory(tmp_path) == tmp_path / "strangler-metrics-abc"
    (tmp_path / "strangler-metrics-def").mkdir()
    with pytest.raises(RuntimeError, match="expected one"):
        metrics_directory(tmp_path)


def test_admin_port_of_a_command_line() -> None:
    command = ["python", "-m", "proxy", "serve", "--port", "8080", "--admin-port", "9090"]
    assert admin_port(command) == 9090


def test_counts_since_an_earlier_reading() -> None:
    before = Counts({1: 100, 2: 50}, 150)
    after = Counts({1: 1100, 2: 1050, 3: 7}, 2157)
    assert after.since(before) == Counts({1: 1000, 2: 1000, 3: 7}, 2007)


def test_settled_returns_the_first_reading_repeated() -> None:
    readings = iter([Counts({1: 5}, 5), Counts({1: 9}, 9), Counts({1: 9}, 9), Counts({1: 0}, 0)])
    assert settled(lambda: next(readings), pause=0) == Counts({1: 9}, 9)


def test_settled_gives_up_with_the_last_reading() -> None:
    count = iter(range(100))

    def read() -> Counts:
        n = next(count)
        return Counts({1: n}, n)

    assert settled(read, pause=0) == Counts({1: workers.SETTLE_TRIES}, workers.SETTLE_TRIES)


def test_a_rounds_shares_are_of_the_requests_sent() -> None:
    assert a_round({1: 600, 2: 402}, 1002).shares() == {1: 0.6, 2: 0.402}


def test_summary_keeps_the_worst_round() -> None:
    rounds = [
        a_round({1: 550, 2: 450}, 1000),
        a_round({1: 380, 2: 621}, 1001),  # one request too many, counted by worker 2
        Round(1000, {1: 500, 2: 500}, 1000, 4000.0, 5000.0, 100, 100),
    ]
    assert summary(rounds) == {
        "worst_share": 0.621,
        "merged_minus_sent": 1,
        "workers_minus_sent": 1,
        "workers_2_vs_1_rps": 0.75,
    }


@pytest.mark.parametrize(
    ("share", "merged", "own", "expected"),
    [
        (0.5, 0, 0, ["0.500  PASS", "+0  PASS", "+0  PASS", "workers: PASS"]),
        (0.40, 0, 0, ["0.400  PASS", "+0  PASS", "+0  PASS", "workers: PASS"]),
        (0.60, 0, 0, ["0.600  PASS", "+0  PASS", "+0  PASS", "workers: PASS"]),
        (0.399, 0, 0, ["0.399  FAIL", "+0  PASS", "+0  PASS", "workers: FAIL"]),
        (0.601, 0, 0, ["0.601  FAIL", "+0  PASS", "+0  PASS", "workers: FAIL"]),
        (0.5, 1, 0, ["0.500  PASS", "+1  FAIL", "+0  PASS", "workers: FAIL"]),
        (0.5, -128, 0, ["0.500  PASS", "-128  FAIL", "+0  PASS", "workers: FAIL"]),
        (0.5, 0, -3, ["0.500  PASS", "+0  PASS", "-3  FAIL", "workers: FAIL"]),
    ],
)
def test_verdict_against_the_workers_target(
    share: float, merged: int, own: int, expected: list[str]
) -> None:
    figures = {
        "worst_share": share,
        "merged_minus_sent": merged,
        "workers_minus_sent": own,
        "workers_2_vs_1_rps": 1.0,
    }
    names = [
        "worker shares in [0.40, 0.60]",
        "/metrics count - requests sent",
        "workers' own counts - sent",
    ]
    checks = [f"  {name:<32} {line}" for name, line in zip(names, expected[:3], strict=True)]
    assert verdict(figures) == ["workers targets:", *checks, expected[3]]


def test_table_has_a_line_per_round_workers_in_pid_order() -> None:
    lines = table([a_round({202: 450, 101: 550}, 1000)]).splitlines()
    assert lines[0].split() == [
        "round", "sent", "worker", "1", "worker", "2", "share", "1", "share", "2",
        "/metrics", "rps", "w1", "rps", "w2", "w2/w1", "wrk", "gap",
    ]  # fmt: skip
    assert lines[1].split() == [
        "1", "1000", "550", "450", "0.550", "0.450", "1000", "8000", "6000", "0.75", "+128",
    ]  # fmt: skip


def test_wrk_report_gives_the_completed_requests() -> None:
    result = parse(WRK_REPORT)
    assert (result.requests, result.rps, result.p50_ms, result.p99_ms) == (38211, 9552.75, 2.5, 10)


def test_take_answers_removes_the_complete_ones() -> None:
    buffer = bytearray(OK + OK + OK[:10])
    assert take_answers(buffer) == 2
    assert buffer == OK[:10]
    assert take_answers(buffer) == 0
    with pytest.raises(ValueError, match="unexpected answer"):
        take_answers(bytearray(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))


@pytest.mark.parametrize(("connections", "each"), [(16, 25), (3, 1), (1, 7)])
def test_send_per_connection_sends_as_many_on_each(connections: int, each: int) -> None:
    with counting_server() as server:
        assert send_per_connection(server.port, connections, each) == connections * each
        server.join_connections()
        assert server.requests == [each] * connections


def test_send_per_connection_fails_when_nothing_listens() -> None:
    with pytest.raises(ConnectionRefusedError):
        send_per_connection(free_port(), 2, 10)


def test_serve_command_serves_one_backend_with_a_pool_for_the_load(tmp_path: Path) -> None:
    command = serve_command(tmp_path, 8080, 9000, 2)
    assert command[command.index("--port") + 1] == "8080"
    assert command[-2:] == ["--workers", "2"]
    table = load_table(tmp_path / "routes-workers.yaml")
    assert table.default == "app"
    assert table.backends["app"].max_connections == workers.POOL_SIZE > workers.CONNECTIONS


def test_a_real_two_worker_proxy_counts_each_request_once(tmp_path: Path) -> None:
    """nginx and `proxy serve --workers 2`: every request of the bounded load is counted once,
    by /metrics and by the workers' own files, and both workers serve some. Needs nginx and wrk
    (.ci/system-deps)."""
    pool, rounds = workers.measure(tmp_path, 1.0, 1, per_connection=30, connections=64)
    (result,) = rounds
    assert len(pool.pids) == 2
    assert result.sent == result.merged == sum(result.served.values()) == 1920
    assert all(served % 30 == 0 for served in result.served.values())  # whole connections
    assert sorted(result.served) == list(pool.pids)
    assert all(served > 0 for served in result.served.values())
    assert 0 <= result.wrk_counted - result.wrk_completed <= 64  # at most one per connection
    assert result.wrk_completed > 0 and result.rps_one > 0 and result.rps_two > 0
    assert not pool.metrics.exists()  # the supervisor removed its directory at exit
