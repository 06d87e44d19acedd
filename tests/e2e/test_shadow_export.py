"""Captured cases become tests, end to end on the real stack: mismatches kept by a real proxy,
exported with `strangler diffs R --export pytest`, and the generated modules run by pytest.

- `customers` is shadowed to a relay in front of the real DRF gateway that changes each
  customer's email (a planted difference): its module fails against the relay, naming the field,
  and passes against the real DRF gateway, which answers as legacy does.
- `bookings` shadows writes as dry runs: `POST /bookings/resource` (legacy 201, DRF 404) becomes a
  test that fails against today's DRF gateway, sending its write as a dry run (nothing stored).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import requests

from tests.e2e.test_shadow import ALTERED_EMAIL, altering_relay
from tests.e2e.test_shadow_writes import BOOKING, SECRET, compared, tables
from tests.support import API_KEY, HEADERS, ROOT, World, make_world

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("e2e-export"), shadow_secret=SECRET) as started:
        started.start_legacy()
        started.start_drf()
        yield started


def routes_text(world: World, relay: str) -> str:
    return (
        "version: 1\nbackends:\n"
        f"  legacy: {{url: {world.url('legacy')}}}\n  drf: {{url: {world.url('drf')}}}\n"
        f"  drf_altered: {{url: {relay}}}\n"
        "default: legacy\nresources:\n"
        "  customers: {backend: legacy, shadow: {backend: drf_altered}}\n"
        "  bookings: {backend: legacy, shadow: {backend: drf, writes: dry-run}}\n"
    )


def export(admin: str, resource: str, into: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "diffs", resource, "--admin", admin, "--export", "pytest"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    module = into / f"test_captured_{resource}.py"
    module.write_text(done.stdout)
    return module


def run(module: Path, new_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "STRANGLER_NEW_URL": new_url,
        "STRANGLER_EXPORT_X_APPLICATION_KEY": API_KEY,
        "STRANGLER_SHADOW_SECRET": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        capture_output=True, text=True, timeout=120, cwd=module.parent, env=env,
    )  # fmt: skip


async def test_captured_mismatches_become_tests_that_fail_until_fixed(
    world: World, tmp_path: Path
) -> None:
    async with altering_relay(world.url("drf")) as relay:
        routes = tmp_path / "routes.yaml"
        routes.write_text(routes_text(world, relay))
        base = world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
        admin = world.url("proxy_admin")
        async with aiohttp.ClientSession() as session:
            for path in ("/customers/3", "/customers/4", "/customers/3"):
                async with session.get(base + path, headers=HEADERS) as response:
                    assert response.status == 200
            async with session.post(
                f"{base}/bookings/resource", json=BOOKING, headers=HEADERS
            ) as response:
                assert response.status == 201
        await compared(admin, ("customers", "bookings"), 4)
        customers = await asyncio.to_thread(export, admin, "customers", tmp_path)
        bookings = await asyncio.to_thread(export, admin, "bookings", tmp_path)
        planted = await asyncio.to_thread(run, customers, relay)
    # one test per request shape: GET /customers/{id} (the newest of three)
    assert "1 failed" in planted.stdout, planted.stdout
    assert '$.email: live="' in planted.stdout and ALTERED_EMAIL in planted.stdout
    fixed = run(customers, world.url("drf"))
    assert fixed.returncode == 0 and "1 passed" in fixed.stdout, fixed.stdout

    before = tables(world)
    still = run(bookings, world.url("drf"))
    assert still.returncode == 1 and "1 failed" in still.stdout, still.stdout
    assert "status: live=201 shadow=404" in still.stdout
    assert tables(world) == before  # sent as a dry run: nothing stored
    # the export names its source and never writes a secret
    text = bookings.read_text()
    assert "strangler diffs bookings --export pytest" in text
    assert API_KEY not in text and SECRET not in text
    record = requests.get(f"{world.url('reservations')}/bookings/1", timeout=5)
    assert record.status_code == 200
