"""A real proxy process (`python -m proxy serve`) in front of fake backends on loopback.

Each fake backend is a real aiohttp server in the test's event loop that answers every request
with `{"backend": <its name>, "path": <the path>}` (status 503 for paths ending in `/fail`, else
200), so a test sees who served what.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support import ROOT, free_port
from tests.support.fleet import fake_backends as fake_backends  # one fake for every suite

ADMIN_TOKEN = "e2e-dashboard-token"


def routes_text(backends: Mapping[str, str], default: str, resources: Mapping[str, str]) -> str:
    lines = ["version: 1", "backends:"]
    for name, url in backends.items():
        lines += [f"  {name}:", f"    url: {url}"]
    lines += [f"default: {default}", "resources:"]
    lines += [f"  {resource}: {backend}" for resource, backend in resources.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Proxy:
    url: str
    admin_url: str
    admin_port: int
    routes: Path


@contextmanager
def proxy_process(routes: Path, log: Path, *, timeout: float = 15.0) -> Iterator[Proxy]:
    """The proxy on free ports with STRANGLER_ADMIN_TOKEN set; SIGTERM (then kill) on exit."""
    port, admin_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "proxy", "serve", "--routes", str(routes),
        "--port", str(port), "--admin-port", str(admin_port),
    ]  # fmt: skip
    env = {**os.environ, "STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN, "STRANGLER_ACCESS_LOG": "0"}
    with open(log, "ab") as output:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        admin_url = f"http://127.0.0.1:{admin_port}"
        wait_ready(proc, f"{admin_url}/-/readyz", timeout, log)
        yield Proxy(f"http://127.0.0.1:{port}", admin_url, admin_port, routes)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the proxy exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready within {timeout}s")


async def send(proxy: Proxy, path: str, count: int) -> list[str]:
    """GET `path` through the proxy `count` times; the backend named in each answer."""
    served = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            async with session.get(f"{proxy.url}{path}") as response:
                assert response.status == 200, await response.text()
                served.append((await response.json())["backend"])
    return served
