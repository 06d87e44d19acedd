"""A fleet for the tests: real proxy processes sharing one etcd (`tests.support.etcd`), in front
of fake backends that answer their own name.

Each fake backend is a real aiohttp server in the test's event loop answering every request with
`{"backend": <its name>, "path": <the path>}` (503 for paths ending in `/fail`), so a test sees
who served what. Each replica is `python -m proxy serve --store URL --store-cache PATH` on free
loopback ports, with its own id (STRANGLER_REPLICA) and an admin token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from proxy.clock import iso_time
from proxy.routing.store import RouteStore, parse_store_url
from tests.support import ROOT, free_port, serve_on_loopback

TOKEN = "fleet-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def fake_backends(*names: str) -> AsyncIterator[dict[str, str]]:
    """name -> base URL of a running fake backend, for each name."""
    runners: list[web.AppRunner] = []

    def app(name: str) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            status = 503 if request.path.endswith("/fail") else 200
            return web.json_response({"backend": name, "path": request.path}, status=status)

        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", answer)
        return application

    urls = {}
    try:
        for name in names:
            runner = web.AppRunner(app(name), access_log=None)
            await runner.setup()
            runners.append(runner)
            port = await serve_on_loopback(runner)
            urls[name] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for runner in runners:
            await runner.cleanup()


def table_text(backends: Mapping[str, str], resources: Mapping[str, str], extra: str = "") -> str:
    lines = ["version: 1", "backends:"]
    for name, url in backends.items():
        lines += [f"  {name}:", f"    url: {url}"]
    lines += ["default: legacy", "resources:  # the fleet's table"]
    lines += [f"  {resource}: {backend}" for resource, backend in resources.items()]
    return "\n".join(lines) + "\n" + extra


async def push(url: str, text: str) -> int:
    """Write `text` as the table (as `strangler store push --force` does); its revision."""
    entry = {"time": iso_time(), "user": "tests", "action": "push", "reason": "seed"}
    async with RouteStore(parse_store_url(url)) as store:
        return await store.push(text, entry, expected_revision=None)


async def put_raw(url: str, text: str) -> None:
    """Put `text` straight into the routes key, bypassing every check."""
    async with RouteStore(parse_store_url(url)) as store:
        await store.etcd.put(store.routes_key, text)


async def audit(url: str) -> list[dict[str, Any]]:
    async with RouteStore(parse_store_url(url)) as store:
        return await store.audit()


@dataclass(frozen=True)
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    cache: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


class Replicas:
    """Replica processes started by one test; all killed at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Replica] = []

    def start(
        self, store: str, name: str, *, cache: Path | None = None, workers: int = 1
    ) -> Replica:
        port, admin_port = free_port(), free_port()
        cache = cache or self.directory / f"{name}.cache.yaml"
        log = self.directory / f"{name}.log"
        command = [
            sys.executable, "-m", "proxy", "serve", "--store", store, "--store-cache", str(cache),
            "--port", str(port), "--admin-port", str(admin_port), "--workers", str(workers),
        ]  # fmt: skip
        env = {
            **os.environ,
            "STRANGLER_REPLICA": name,
            "STRANGLER_ADMIN_TOKEN": TOKEN,
            "STRANGLER_ACCESS_LOG": "0",
        }
        with log.open("ab") as output:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
        replica = Replica(name, proc, port, admin_port, cache, log)
        self.started.append(replica)
        return replica

    def close(self) -> None:
        for replica in self.started:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in self.started:
            try:
                replica.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait()


@contextmanager
def replicas(directory: Path) -> Iterator[Replicas]:
    started = Replicas(directory)
    try:
        yield started
    finally:
        started.close()


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.01
) -> float:
    """Poll `check` until it holds; the seconds it took (AssertionError after `timeout`)."""
    began = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(every)


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        assert response.status == 200, (url, response.status, await response.text())
        return await response.json()


async def ready(session: aiohttp.ClientSession, replica: Replica, timeout: float = 20) -> None:
    async def answers() -> bool:
        if replica.proc.poll() is not None:
            raise AssertionError(f"{replica.name} exited: {replica.log.read_text()}")
        try:
            async with session.get(f"{replica.admin_url}/-/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await wait_for(answers, timeout, f"{replica.name} ready", every=0.05)


async def store_block(session: aiohttp.ClientSession, replica: Replica) -> dict[str, Any]:
    """The `store` block of the replica's /-/routes, plus its `last_reload_error`."""
    body = await get_json(session, f"{replica.admin_url}/-/routes")
    return {**body["store"], "last_reload_error": body["last_reload_error"], "body": body}


async def metric(
    session: aiohttp.ClientSession, replica: Replica, name: str, **labels: str
) -> float:
    """The sum of the samples of `name` with `labels` (0 when there is none)."""
    async with session.get(f"{replica.admin_url}/metrics") as response:
        text = await response.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


async def flip(
    session: aiohttp.ClientSession, replica: Replica, resource: str, backend: str
) -> dict[str, Any]:
    async with session.put(
        f"{replica.admin_url}/-/routes/{resource}",
        json={"backend": backend, "reason": "fleet test"},
        headers=AUTH,
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body
