"""The proxy benchmarks' pure parts, the exact-count load against a real loopback server, and
one real instruction count (our proxy and nginx under callgrind, a few hundred requests).

The throughput benchmark itself (wrk against three servers for a minute) is left to `make bench`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import instructions
from bench.__main__ import parse_args
from bench.instructions import complete_response, dumped_instructions, send_exactly
from bench.load import Result
from bench.proxy import median_ratio, verdict
from tests.support import free_port

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


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


class CountingServer:
    """A real loopback HTTP server answering OK to each request head, counting them."""

    def __init__(self) -> None:
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self.answer, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def answer(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while data := conn.recv(65536):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    with self.lock:
                        self.requests += 1
                    conn.sendall(OK)


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
    server.listener.close()
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.parametrize(("connections", "total"), [(32, 500), (4, 3), (1, 1)])
def test_send_exactly_sends_that_many_requests(
    counting_server: CountingServer, connections: int, total: int
) -> None:
    send_exactly(counting_server.port, connections, total)
    for thread in counting_server.threads:
        thread.join(5)  # each closes once the client has closed its connection
    assert counting_server.requests == total


def test_send_exactly_fails_when_nothing_listens() -> None:
    with pytest.raises(ConnectionRefusedError):
        send_exactly(free_port(), 2, 10)


def test_instruction_count_of_both_proxies(tmp_path: Path) -> None:
    """Real callgrind runs: both counts come out, and ours costs more than nginx's.

    Needs valgrind and nginx (.ci/system-deps installs both).
    """
    counts = instructions.measure(tmp_path, 300)
    assert set(counts) == {"proxy", "proxy-python", "nginx"}
    assert 2_000 < counts["nginx"] < counts["proxy"] < 2_000_000
