"""`python -m proxy serve` as a real process: ports, SIGTERM drain, reloads, workers, memory."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from proxy.observe.metrics import FLUSH_SECONDS
from tests.support import ROOT, free_port
from tests.support.raw_http import (
    RawRequest,
    Upstream,
    canned,
    exchange,
    listening_inodes,
    read_body,
    read_head,
    respond,
    worker_pids,
    workers_listening,
    write_routes,
)

GET = b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n"


def test_bad_routes_file_exits_1(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("version: 1\nbackends: {}\ndefault: nowhere\n")
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--routes", str(routes),
         "--port", str(free_port()), "--admin-port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "routes.yaml" in done.stderr
    assert "Traceback" not in done.stderr


async def test_admin_paths_are_proxied_on_the_public_port(
    upstream_factory, proxy_process, tmp_path
):
    upstream = await upstream_factory(canned(lambda r: respond(body=b"upstream")))
    proxy = proxy_process(write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app"))
    for path in (b"/-/healthz", b"/-/readyz", b"/-/routes", b"/metrics", b"/-/"):
        result = await exchange(proxy.port, b"GET %b HTTP/1.1\r\nHost: h\r\n\r\n" % path)
        assert result.body == b"upstream"
    assert [r.request_line.split()[1] for r in upstream.requests] == [
        b"/-/healthz", b"/-/readyz", b"/-/routes", b"/metrics", b"/-/",
    ]  # fmt: skip
    ready = await exchange(proxy.admin_port, b"GET /-/readyz HTTP/1.1\r\nHost: h\r\n\r\n")
    assert ready.status == 200


def slow(delay: float):
    def make(upstream: Upstream):
        async def handle(reader, writer):
            while head := await read_head(reader):
                upstream.requests.append(RawRequest(head, b""))
                await asyncio.sleep(delay)
                writer.write(respond(body=b"finished"))
                await writer.drain()

        return handle

    return make


async def test_sigterm_drains_in_flight_then_exits_0(upstream_factory, proxy_process, tmp_path):
    upstream = await upstream_factory(slow(1.0))
    routes = write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app")
    proxy = proxy_process(routes, env={"STRANGLER_DRAIN_SECONDS": "5"})
    in_flight = asyncio.create_task(exchange(proxy.port, GET))
    while not upstream.requests:
        await asyncio.sleep(0.01)
    proxy.terminate()
    await asyncio.sleep(0.2)
    ready = await exchange(proxy.admin_port, b"GET /-/readyz HTTP/1.1\r\nHost: h\r\n\r\n")
    assert ready.status == 503
    try:
        await asyncio.open_connection("127.0.0.1", proxy.port)
        refused = False
    except ConnectionRefusedError:
        refused = True
    assert refused
    result = await in_flight
    assert result.status == 200
    assert result.body == b"finished"
    assert result.header(b"Connection") == b"close"
    assert await asyncio.to_thread(proxy.proc.wait, 10) == 0


async def test_sigterm_cuts_what_outlives_drain_seconds(upstream_factory, proxy_process, tmp_path):
    upstream = await upstream_factory(slow(30))
    routes = write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app")
    proxy = proxy_process(routes, env={"STRANGLER_DRAIN_SECONDS": "0.5"})
    in_flight = asyncio.create_task(exchange(proxy.port, GET))
    while not upstream.requests:
        await asyncio.sleep(0.01)
    proxy.terminate()
    assert await asyncio.to_thread(proxy.proc.wait, 10) == 0
    await asyncio.gather(in_flight, return_exceptions=True)


async def test_sighup_reloads(upstream_factory, proxy_process, tmp_path):
    one = await upstream_factory(canned(respond(body=b"one")))
    two = await upstream_factory(canned(respond(body=b"two")))
    routes = write_routes(tmp_path / "routes.yaml", {"one": one.url, "two": two.url}, "one")
    proxy = proxy_process(routes)
    assert (await exchange(proxy.port, GET)).body == b"one"
    write_routes(routes, {"one": one.url, "two": two.url}, "two")
    proxy.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if (await exchange(proxy.port, GET)).body == b"two":
            break
        await asyncio.sleep(0.05)
    assert (await exchange(proxy.port, GET)).body == b"two"


def metric_sum(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))


async def test_workers_share_the_port_and_sum_metrics(upstream_factory, proxy_process, tmp_path):
    one = await upstream_factory(canned(respond(body=b"one")))
    two = await upstream_factory(canned(respond(body=b"two")))
    routes = write_routes(tmp_path / "routes.yaml", {"one": one.url, "two": two.url}, "one")
    proxy = proxy_process(routes, "--workers", "2")
    await workers_listening(proxy.proc.pid, proxy.port, 2)
    results = await asyncio.gather(*(exchange(proxy.port, GET) for _ in range(60)))
    assert {r.body for r in results} == {b"one"}
    # Each worker flushes its counts every FLUSH_SECONDS: the sum is exact within that time.
    deadline = time.monotonic() + 10 * FLUSH_SECONDS
    while True:
        metrics = await exchange(proxy.admin_port, b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n")
        total = metric_sum(metrics.body.decode(), "strangler_requests_total")
        if total == 60 or time.monotonic() > deadline:
            break
        await asyncio.sleep(FLUSH_SECONDS / 5)
    assert total == 60
    write_routes(routes, {"one": one.url, "two": two.url}, "two")
    for _ in range(100):
        bodies = {
            r.body for r in await asyncio.gather(*(exchange(proxy.port, GET) for _ in range(20)))
        }
        if bodies == {b"two"}:
            break
        await asyncio.sleep(0.05)
    assert bodies == {b"two"}
    proxy.terminate()
    assert await asyncio.to_thread(proxy.proc.wait, 15) == 0


def test_workers_are_separate_processes(proxy_process, tmp_path):
    routes = write_routes(
        tmp_path / "routes.yaml", {"app": f"http://127.0.0.1:{free_port()}"}, "app"
    )
    proxy = proxy_process(routes, "--workers", "3")
    assert len(worker_pids(proxy.proc.pid)) == 3
    proxy.terminate()
    assert proxy.proc.wait(15) == 0


async def test_workers_stop_when_their_supervisor_is_killed(proxy_process, tmp_path):
    """SIGKILL leaves the supervisor no chance to stop its workers: the kernel tells them
    (PR_SET_PDEATHSIG), they drain and exit, and the port is free for a restarted proxy."""
    routes = write_routes(
        tmp_path / "routes.yaml", {"app": f"http://127.0.0.1:{free_port()}"}, "app"
    )
    proxy = proxy_process(routes, "--workers", "2")
    await workers_listening(proxy.proc.pid, proxy.port, 2)
    workers = worker_pids(proxy.proc.pid)
    proxy.proc.kill()
    assert proxy.proc.wait(5) == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [pid for pid in workers if running(pid)] == []
    assert listening_inodes(proxy.port) == set()


def running(pid: int) -> bool:
    """Whether `pid` is alive (an exited process nobody reaped yet is a zombie: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


SIZE = int(os.environ.get("STRANGLER_TEST_STREAM_MIB", "256")) * 1024 * 1024
BLOCK = b"z" * (1024 * 1024)


def sink_and_source(upstream: Upstream):
    """GET: a SIZE-byte Content-Length body; POST: reads the chunked body, answers its length."""

    async def handle(reader, writer):
        while head := await read_head(reader):
            if head.startswith(b"POST"):
                total = 0
                while True:
                    size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        break
                    total += len(await reader.readexactly(size + 2)) - 2
                writer.write(respond(body=b"%d" % total))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
                for _ in range(SIZE // len(BLOCK)):
                    writer.write(BLOCK)
                    await writer.drain()
            await writer.drain()

    return handle


async def test_streaming_both_ways_keeps_memory_bounded(upstream_factory, proxy_process, tmp_path):
    upstream = await upstream_factory(sink_and_source)
    proxy = proxy_process(write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app"))
    await exchange(proxy.port, b"GET /warm HTTP/1.1\r\nHost: h\r\nRange: x\r\n\r\n", timeout=30)
    baseline = rss_mib(proxy.proc.pid)

    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(GET)
    head = await read_head(reader)
    assert head.startswith(b"HTTP/1.1 200")
    received = 0
    while received < SIZE:
        chunk = await reader.read(1 << 20)
        assert chunk
        received += len(chunk)
    assert received == SIZE

    writer.write(b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(SIZE // len(BLOCK)):
        writer.write(b"%x\r\n%b\r\n" % (len(BLOCK), BLOCK))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    head = await read_head(reader)
    assert head.startswith(b"HTTP/1.1 200")
    assert await read_body(reader, head) == b"%d" % SIZE
    writer.close()

    grown = peak_rss_mib(proxy.proc.pid) - baseline
    print(f"proxy: RSS {baseline:.1f} MiB at start, peak +{grown:.1f} MiB for 2 x {SIZE >> 20} MiB")
    assert grown < 40, f"proxy RSS grew {grown:.1f} MiB while streaming 2 x {SIZE >> 20} MiB"


def echo_length(upstream: Upstream):
    async def handle(reader, writer):
        while head := await read_head(reader):
            body = await read_body(reader, head)
            writer.write(respond(body=b"%d" % len(body)))
            await writer.drain()

    return handle


async def test_upload_in_progress_completes_during_drain(upstream_factory, proxy_process, tmp_path):
    upstream = await upstream_factory(echo_length)
    routes = write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app")
    proxy = proxy_process(routes, env={"STRANGLER_DRAIN_SECONDS": "5"})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"PUT /bookings/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345")
    await writer.drain()
    await asyncio.sleep(0.3)
    proxy.terminate()
    await asyncio.sleep(0.3)
    writer.write(b"67890")
    head = await asyncio.wait_for(read_head(reader), 5)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert await read_body(reader, head) == b"10"
    writer.close()
    assert await asyncio.to_thread(proxy.proc.wait, 10) == 0
