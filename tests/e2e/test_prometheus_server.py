"""A real Prometheus (Debian's /usr/bin/prometheus) scraping a real proxy process.

Two resources on two fake backends; Prometheus scrapes the admin port every second and loads
deploy/prometheus/alerts.yml. What it stores must equal what was sent, per backend, and every
rule of alerts.yml must load and evaluate with health "ok". A missing binary fails the test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.e2e.fakes import Proxy, fake_backends, proxy_process, routes_text, send
from tests.support import ROOT, free_port

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
JOB = "strangler-proxy"
pytestmark = pytest.mark.e2e


def prometheus_config(admin_port: int) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"]}],
                }
            ],
        }
    )


@contextmanager
def prometheus(directory: Path, admin_port: int) -> Iterator[str]:
    """Prometheus on a free loopback port with its own storage; its base URL."""
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is not installed (Debian: apt-get install prometheus)"
    config = directory / "prometheus.yml"
    config.write_text(prometheus_config(admin_port))
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with open(directory / "prometheus.log", "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Proxy, str, aiohttp.ClientSession]]:
    async with fake_backends("legacy", "drf") as urls:
        routes = tmp_path / "routes.yaml"
        routes.write_text(routes_text(urls, "legacy", {"bookings": "legacy", "tours": "drf"}))
        with proxy_process(routes, tmp_path / "proxy.log") as proxy:
            with prometheus(tmp_path, proxy.admin_port) as server:
                timeout = aiohttp.ClientTimeout(total=5)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    await until(lambda: ready(session, server), 30, "Prometheus ready")
                    yield proxy, server, session


async def ready(session: aiohttp.ClientSession, server: str) -> bool:
    try:
        async with session.get(f"{server}/-/ready") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{what}: not within {timeout}s (last: {last!r})")


async def api(session: aiohttp.ClientSession, server: str, path: str, **params: str) -> Any:
    async with session.get(f"{server}/api/v1/{path}", params=params) as response:
        body = await response.json()
        assert response.status == 200 and body["status"] == "success", body
        return body["data"]


async def by_backend(session: aiohttp.ClientSession, server: str, query: str) -> dict[str, float]:
    data = await api(session, server, "query", query=query)
    assert data["resultType"] == "vector"
    return {item["metric"]["backend"]: float(item["value"][1]) for item in data["result"]}


async def test_prometheus_stores_what_the_proxy_counted(
    world: tuple[Proxy, str, aiohttp.ClientSession],
) -> None:
    proxy, server, session = world
    totals = "sum by (backend) (strangler_requests_total)"

    # two rounds, each seen by a scrape: rate() needs two samples of a series to be > 0
    assert await send(proxy, "/bookings/1", 5) == ["legacy"] * 5
    assert await send(proxy, "/tours", 3) == ["drf"] * 3
    expected = {"legacy": 5.0, "drf": 3.0}

    async def scraped() -> bool:
        return await by_backend(session, server, totals) == expected

    await until(scraped, 20, f"{totals} == {expected}")
    assert await send(proxy, "/bookings/2", 12) == ["legacy"] * 12
    assert await send(proxy, "/tours/7", 7) == ["drf"] * 7
    expected = {"legacy": 17.0, "drf": 10.0}
    await until(scraped, 20, f"{totals} == {expected}")

    rates = await by_backend(
        session, server, "sum by (backend) (rate(strangler_requests_total[1m]))"
    )
    assert set(rates) == {"legacy", "drf"}
    assert rates["legacy"] > 0 and rates["drf"] > 0
    per_resource = await api(
        session,
        server,
        "query",
        query="sum by (resource, backend, code) (strangler_requests_total)",
    )
    assert sorted(
        (item["metric"]["resource"], item["metric"]["backend"], item["metric"]["code"],
         item["value"][1])
        for item in per_resource["result"]
    ) == [("bookings", "legacy", "200", "17"), ("tours", "drf", "200", "10")]  # fmt: skip
    observed = await by_backend(
        session, server, "sum by (backend) (strangler_request_duration_seconds_count)"
    )
    assert observed == {"legacy": 17.0, "drf": 10.0}

    [target] = (await api(session, server, "targets"))["activeTargets"]
    assert (target["labels"]["job"], target["health"]) == (JOB, "up")


async def test_the_alert_rules_load_and_evaluate(
    world: tuple[Proxy, str, aiohttp.ClientSession],
) -> None:
    _, server, session = world
    declared = {
        rule.get("alert") or rule["record"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }

    async def evaluated() -> list[dict[str, Any]] | None:
        groups = (await api(session, server, "rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = await until(evaluated, 20, "every rule evaluated once")
    assert {rule["name"] for rule in rules} == declared
    assert {rule["name"]: rule["health"] for rule in rules} == dict.fromkeys(declared, "ok")
    assert all(rule.get("lastError", "") == "" for rule in rules)
