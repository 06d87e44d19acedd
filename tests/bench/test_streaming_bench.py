"""The streaming benchmark's pure parts, its nginx configurations (checked by `nginx -t`) and its
download against a real loopback server.

The 1 GiB downloads themselves (about a minute) are left to `bench.streaming.run`.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import nginx, streaming
from bench.__main__ import parse_args
from bench.streaming import median_ratio, parse_curl, status_mib, summary, turned, verdict
from tests.support import free_port

STATUS = "Name:\tpython\nVmPeak:\t  300000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   50176 kB\n"


def test_streaming_is_a_benchmark_of_its_own() -> None:
    assert parse_args(["streaming"]).which == "streaming"
    assert parse_args(["streaming", "--rounds", "3"]).rounds == 3


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("536870912 1073741824", (536870912.0, 1073741824)),
        ("1073741824.000 1073741824", (1073741824.0, 1073741824)),
        ("0 0", (0.0, 0)),
    ],
)
def test_parse_curl_reads_rate_and_size(output: str, expected: tuple[float, int]) -> None:
    assert parse_curl(output) == expected


def test_status_mib_reads_one_field() -> None:
    assert status_mib(STATUS, "VmHWM") == 50.0
    assert status_mib(STATUS, "VmRSS") == 49.0
    with pytest.raises(ValueError, match="no VmSwap"):
        status_mib(STATUS, "VmSwap")


@pytest.mark.parametrize(
    ("round_", "expected"),
    [
        (0, ("direct", "proxy", "nginx")),
        (1, ("proxy", "nginx", "direct")),
        (2, ("nginx", "direct", "proxy")),
        (3, ("direct", "proxy", "nginx")),
    ],
)
def test_each_round_starts_one_target_later(round_: int, expected: tuple[str, ...]) -> None:
    assert turned(streaming.TARGETS, round_) == expected


def test_the_ratio_is_the_median_of_the_rounds() -> None:
    rates = {"proxy": [60.0, 80.0, 10.0], "nginx": [100.0, 100.0, 100.0]}
    assert median_ratio(rates, "proxy", "nginx") == 0.6


def test_summary_figures() -> None:
    rates = {"direct": [300.0], "proxy": [150.0, 90.0], "nginx": [200.0, 200.0]}
    figures = summary(rates, {"proxy": 0.9, "nginx": 0.45}, {"proxy": 1.5, "nginx": 0.25})
    assert figures == {
        "proxy_vs_nginx_rate": 0.6,
        "proxy_rss_growth_mib": 1.5,
        "nginx_rss_growth_mib": 0.25,
        "proxy_cpu_s_per_gib": 0.9,
        "nginx_cpu_s_per_gib": 0.45,
        "proxy_vs_nginx_cpu": 2.0,
    }


@pytest.mark.parametrize(
    ("rate", "growth", "expected"),
    [
        (0.80, 1.0, ["PASS", "PASS", "streaming: PASS"]),
        (0.70, 39.9, ["PASS", "PASS", "streaming: PASS"]),
        (0.699, 1.0, ["FAIL", "PASS", "streaming: FAIL"]),
        (0.80, 40.0, ["PASS", "FAIL", "streaming: FAIL"]),
    ],
)
def test_verdict_against_the_two_targets(rate: float, growth: float, expected: list[str]) -> None:
    lines = verdict({"proxy_vs_nginx_rate": rate, "proxy_rss_growth_mib": growth})
    assert lines[0] == "streaming targets:"
    assert lines[1] == f"  {'rate >= 0.70 x nginx':<32} {rate:.3f}  {expected[0]}"
    assert lines[2] == f"  {'RSS growth < 40 MiB':<32} {growth:.3f}  {expected[1]}"
    assert lines[3] == expected[2]


def test_table_shows_mib_per_second_cpu_and_memory() -> None:
    rates = {"direct": [3.0 * 2**20, 1.0 * 2**20, 2.0 * 2**20], "proxy": [2.0 * 2**20]}
    lines = streaming.table(rates, {"proxy": 0.5}, {"proxy": 1.25}).splitlines()
    assert lines[1].split() == ["direct", "3", "2", "-", "-"]
    assert lines[2].split() == ["proxy", "2", "2", "0.500", "1.2"]


def test_the_served_file_is_sparse_and_exactly_one_gib(tmp_path: Path) -> None:
    root = streaming.serve_files(tmp_path)
    big = (root / streaming.FILE).stat()
    assert big.st_size == streaming.SIZE == 1 << 30
    assert big.st_blocks * 512 < 1 << 20  # holes, not a GiB of disk
    assert (root / streaming.WARM).stat().st_size == 4096


def test_the_nginx_configurations_are_valid(tmp_path: Path) -> None:
    root = streaming.serve_files(tmp_path)
    configurations = {
        "files": nginx.FILES.format(port=free_port(), root=root),
        "stream-proxy": nginx.STREAM_PROXY.format(port=free_port(), upstream=free_port()),
    }
    for name, body in configurations.items():
        check = subprocess.run(
            [*nginx.command(tmp_path, name, body), "-t"], capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
    text = (tmp_path / "nginx-stream-proxy.conf").read_text()
    for directive in ("proxy_buffering on;", "proxy_buffers 8 64k;", "proxy_max_temp_file_size 0;"):
        assert directive in text


class Body(BaseHTTPRequestHandler):
    """1000 bytes for any GET."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Body)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/file"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_fetch_reports_the_size_received(server_url: str) -> None:
    rate, size = streaming.fetch(server_url)
    assert size == 1000
    assert rate > 0


def test_a_download_of_the_wrong_size_stops_the_benchmark(server_url: str) -> None:
    with pytest.raises(RuntimeError, match=f"1000 bytes, not {1 << 30}"):
        streaming.download(server_url)


def test_a_failed_download_stops_the_benchmark() -> None:
    with pytest.raises(RuntimeError, match="failed with exit status 7"):
        streaming.fetch(f"http://127.0.0.1:{free_port()}/big")
