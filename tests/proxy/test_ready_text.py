"""`strangler ready` against a real proxy process with fake backends on loopback, and the
text of proxy.ready_text."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import urllib.request
from typing import Any

from proxy.ready_text import print_ready, progress_line
from tests.support import ROOT
from tests.support.raw_http import canned, exchange, respond

GET = b"GET /bookings/1 HTTP/1.1\r\nHost: api\r\n\r\n"


def strangler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def read_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


async def test_ready_against_a_real_proxy(upstream_factory, proxy_process, tmp_path):
    legacy = await upstream_factory(canned(respond(body=b"legacy")))
    drf = await upstream_factory(canned(respond(body=b"drf")))
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"version: 1\nbackends:\n  legacy:\n    url: {legacy.url}\n  drf:\n    url: {drf.url}\n"
        "default: legacy\nresources:\n  bookings:\n    backend: legacy\n"
        "    canary: {backend: drf, percent: 100}\n  tours: legacy\n"
    )
    proxy = proxy_process(routes)
    ready_url = f"{proxy.admin_url}/-/ready/bookings"
    await asyncio.to_thread(read_json, ready_url)  # the window starts before the requests
    for _ in range(30):
        assert (await exchange(proxy.port, GET)).body == b"drf"
    for _ in range(200):  # counted when each request ends: poll until all 30 are
        body = await asyncio.to_thread(read_json, ready_url)
        if body["new"]["requests"] == 30:
            break
        await asyncio.sleep(0.05)
    assert body["new"]["requests"] == 30

    done = await asyncio.to_thread(
        strangler, "ready", "bookings", "--admin", proxy.admin_url, "--min-requests", "20"
    )
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        r"bookings \(canary 100%\): READY  \(last \d+ s; min 20 requests\)", lines[0]
    )
    assert lines[1:5] == [
        "  ok    new backend  drf against legacy",
        "  -     shadow       no shadow comparison",
        "  ok    debt         no request shape needed a fallback",
        "  ok    errors       30 requests, 5xx 0.0% vs 0.0%",
    ]
    assert re.fullmatch(r"  -     latency      p99 \d+ ms; no old-stack baseline", lines[5])
    assert len(lines) == 6

    done = await asyncio.to_thread(strangler, "ready", "bookings", "--admin", proxy.admin_url)
    assert (done.returncode, done.stderr) == (1, "")
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"bookings \(canary 100%\): NOT READY  \(last \d+ s; min 200 requests\)",
                        lines[0])  # fmt: skip
    assert lines[4] == "  FAIL  errors       30 requests, 5xx 0.0% vs 0.0%: fewer than 200 requests"
    assert lines[6] == (
        "  FAIL  evidence     neither enough shadow comparisons nor new-stack requests to judge"
    )

    done = await asyncio.to_thread(strangler, "ready", "tours", "--admin", proxy.admin_url)
    assert done.returncode == 1
    assert done.stdout.splitlines()[:2] == [
        done.stdout.splitlines()[0],
        "  FAIL  new backend  the entry names no backend but the default",
    ]
    assert done.stdout.startswith("tours (legacy): NOT READY")

    done = await asyncio.to_thread(strangler, "ready", "nope", "--admin", proxy.admin_url)
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", "strangler ready: Not found: no resource 'nope' in the table.\n"
    )  # fmt: skip

    done = await asyncio.to_thread(strangler, "status", "--admin", proxy.admin_url)
    assert done.returncode == 0
    status = done.stdout.splitlines()
    assert status[4] == "progress:    1 legacy, 1 canary; last 5m: drf 100.0%"
    assert status[5:8] == [
        "RESOURCE  STAGE        BACKEND  METHODS  REQ/S  ERRORS",
        status[6],
        "tours     legacy       legacy   -        0.0    -",
    ]
    assert status[6].startswith("bookings  canary 100%  legacy   -        ")


def test_print_ready_and_the_progress_line() -> None:
    body = {
        "resource": "customers", "stage": "shadow", "ready": False, "window_seconds": 300.0,
        "criteria": {"min_requests": 200},
        "checks": [
            {"name": "shadow", "result": "fail", "text": "150 comparisons"},
            {"name": "debt", "result": "ok", "text": "none"},
        ],
    }  # fmt: skip
    out = io.StringIO()
    print_ready(body, out)
    assert out.getvalue() == (
        "customers (shadow): NOT READY  (last 300 s; min 200 requests)\n"
        "  FAIL  shadow  150 comparisons\n"
        "  ok    debt    none\n"
    )
    assert progress_line({"progress": {"text": "2 new; last 5m: drf 100.0%"}}) == (
        "progress:    2 new; last 5m: drf 100.0%"
    )
    assert progress_line({}) == "progress:    -"
