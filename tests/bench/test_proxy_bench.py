"""The proxy benchmarks' pure parts, the exact-count load against a real loopback server, and
one real instruction count (our proxy and nginx under callgrind, a few hundred requests).

The throughput benchmark itself (wrk against three servers for a minute) is left to `make bench`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import instructions
from bench.__main__ import parse_args
from bench.instructions import complete_response, dumped_instructions, send_exactly
from bench.load import Result
from bench.proxy import median_ratio, verdict
from tests.support import free_port
from tests.support.counting_server import OK, counting_server


def test_instructions_is_a_benchmark_of_its_own() -> None:
    args = parse_args(["instructions", "--requests", "300"])
    assert (args.which, args.requests) == ("instructions", 300)
    assert parse_args([]).requests == 4000


def test_bad_request_count_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["instructions", "--requests", "0"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("rps", "p50", "cpu", "expected"),
    [
        (0.70, 0.08, 1.4, ["PASS", "PASS", "PASS", "proxy: PASS"]),
        (0.65, 0.10, 1.5, ["PASS", "PASS", "PASS", "proxy: PASS"]),
        (0.649, 0.08, 1.4, ["FAIL", "PASS", "PASS", "proxy: FAIL"]),
        (0.70, 0.11, 1.4, ["PASS", "FAIL", "PASS", "proxy: FAIL"]),
        (0.70, 0.08, 1.51, ["PASS", "PASS", "FAIL", "proxy: FAIL"]),
    ],
)
def test_verdict_against_the_three_targets(
    rps: float, p50: float, cpu: float, expected: list[str]
) -> None:
    figures = {"proxy_vs_nginx_rps": rps, "proxy_added_p50_ms_c1": p50, "proxy_vs_nginx_cpu": cpu}
    lines = verdict(figures)
    assert lines[0] == "proxy targets:"
    assert lines[1] == f"  {'throughput >= 0.65 x nginx':<32} {rps:.3f}  {expected[0]}"
    assert lines[2] == f"  {'added p50 at c1 <= 0.1 ms':<32} {p50:.3f}  {expected[1]}"
    assert lines[3] == f"  {'CPU/request <= 1.5 x nginx':<32} {cpu:.3f}  {expected[2]}"
    assert lines[4] == expected[3]


def test_the_ratio_is_the_median_of_the_rounds() -> None:
    def runs(*rps: float) -> list[Result]:
        return [Result(rps=r, p50_ms=1.0, p99_ms=2.0, errors=0) for r in rps]

    both = {
        "proxy": {"c32": runs(60, 70, 10), "c1": []},
        "nginx": {"c32": runs(100, 100, 100), "c1": []},
    }
    assert median_ratio(both, "proxy", "nginx") == 0.6


def test_complete_response_sizes_one_answer() -> None:
    assert complete_response(bytearray(OK[:-1])) is None
    assert complete_response(bytearray(OK[:20])) is None
    assert complete_response(bytearray(OK + OK[:10])) == len(OK)
    lowercase = b"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n"
    assert complete_response(bytearray(lowercase)) == len(lowercase)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "unexpected answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "without Content-Length"),
    ],
)
def test_complete_response_refuses_what_it_cannot_count(answer: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        complete_response(bytearray(answer))


def test_dumped_instructions_reads_the_explicit_dump(tmp_path: Path) -> None:
    out = tmp_path / "proxy.callgrind"
    out.write_bytes(b"# callgrind format\nevents: Ir\nsummary: 0\ntotals: 0\n")
    dump = b"events: Ir\nsummary: 0\nfn=x\n1 5\ntotals: 1234\n"
    (tmp_path / "proxy.callgrind.1").write_bytes(dump)
    assert dumped_instructions(out) == 1234
    (tmp_path / "proxy.callgrind.1").unlink()
    assert dumped_instructions(out) == 0
    out.unlink()
    with pytest.raises(RuntimeError, match="no callgrind counts"):
        dumped_instructions(out)


@pytest.mark.parametrize(("connections", "total"), [(32, 500), (4, 3), (1, 1)])
def test_send_exactly_sends_that_many_requests(connections: int, total: int) -> None:
    with counting_server() as server:
        send_exactly(server.port, connections, total)
        server.join_connections()
        assert server.total == total


def test_send_exactly_fails_when_nothing_listens() -> None:
    with pytest.raises(ConnectionRefusedError):
        send_exactly(free_port(), 2, 10)


def test_instruction_count_of_both_proxies(tmp_path: Path) -> None:
    """Real callgrind runs: every count comes out, ours costs more than nginx's, and the access
    log costs something.

    Needs valgrind and nginx (.ci/system-deps installs both).
    """
    counts = instructions.measure(tmp_path, 300)
    assert set(counts) == {"proxy", "proxy-python", "proxy-log", "nginx"}
    assert 2_000 < counts["nginx"] < counts["proxy"] < counts["proxy-log"] < 2_000_000
