"""The guard, end to end: the real stack with the DRF gateway failing for bookings
(STRANGLER_DRF_FAULTS=bookings=500). Bookings and customers are flipped to DRF, bookings with a
guard; under traffic the guard rolls bookings back to legacy within its window, customers stays
on DRF, and the audit log and /metrics say so.

Which gateway served a request is read from the gateways' own access logs (X-Request-ID).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from proxy.routing import edit
from tests.support import HEADERS, World, make_world

WINDOW = 5
ROUTES = f"""\
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings:
    backend: legacy
    guard: {{max_error_rate: 0.05, min_requests: 20, window: {WINDOW}}}
  customers: legacy
"""
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Path]]:
    data = tmp_path_factory.mktemp("e2e-guard")
    routes = data / "config" / "routes.yaml"
    routes.parent.mkdir()
    routes.write_text(ROUTES)
    for resource in ("bookings", "customers"):
        edit.flip(routes, resource, "drf", user="e2e", reason="DRF passed the contract tests")
    with make_world(data) as world:
        world.start_legacy()
        world.start_drf({"STRANGLER_DRF_FAULTS": "bookings=500"})
        world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
        yield world, routes


def get(world: World, path: str) -> tuple[str, int]:
    request_id = uuid.uuid4().hex
    headers = {**HEADERS, "X-Request-ID": request_id}
    response = requests.get(f"{world.url('proxy')}{path}", headers=headers, timeout=10)
    return request_id, response.status_code


def gateway_of(world: World, request_id: str) -> str:
    for _ in range(50):
        for gateway in ("legacy", "drf"):
            if f"request_id={request_id}" in world.log(gateway):
                return gateway
        time.sleep(0.05)
    raise AssertionError(f"{request_id} is in no gateway's access log")


def test_the_guard_rolls_the_failing_resource_back_within_its_window(
    stack: tuple[World, Path],
) -> None:
    world, routes = stack
    started = time.monotonic()
    failed = 0
    while "bookings:\n    backend: drf" in routes.read_text():
        assert time.monotonic() - started < WINDOW, "no rollback within the window"
        _, status = get(world, "/bookings/1")
        failed += status == 500
        assert get(world, "/customers/3")[1] == 200
    assert failed >= 20
    time.sleep(0.3)  # the proxy reloads at once; leave room for its watcher all the same
    request_id, status = get(world, "/bookings/1")
    assert status == 200
    assert gateway_of(world, request_id) == "legacy"
    request_id, status = get(world, "/customers/3")
    assert (status, gateway_of(world, request_id)) == (200, "drf")


def test_only_the_failing_resource_moved_and_the_audit_says_why(
    stack: tuple[World, Path],
) -> None:
    world, routes = stack
    text = routes.read_text()
    assert "bookings:\n    backend: legacy\n" in text and "  customers: drf\n" in text
    entries = [json.loads(line) for line in edit.audit_path(routes).read_text().splitlines()]
    assert [(entry["user"], entry["action"], entry["resource"]) for entry in entries] == [
        ("e2e", "flip", "bookings"),
        ("e2e", "flip", "customers"),
        ("guard", "rollback", "bookings"),
    ]
    guard = entries[-1]
    assert (guard["from"], guard["to"]) == ("drf", "legacy")
    assert re.fullmatch(r"guard: error rate 100\.0% > 5% over 5 s, \d+ requests", guard["reason"])
    metrics = requests.get(f"{world.url('proxy_admin')}/metrics", timeout=5).text
    assert 'strangler_guard_rollbacks_total{resource="bookings"} 1.0' in metrics
    stats = requests.get(f"{world.url('proxy_admin')}/-/stats", timeout=5).json()
    bookings = next(item for item in stats["resources"] if item["resource"] == "bookings")
    assert bookings["guard"]["state"] == "rolled back"
    assert bookings["guard"]["fired"]["reason"] == guard["reason"]
