"""Canary and fallback on the real stack: source systems, both gateways under gunicorn, the proxy.

`bookings` is on DRF with a fallback to legacy on [404, 405, 501]: the legacy-only request shape
`POST /bookings/resource` still creates a booking (through legacy), is counted, and is listed in
/-/debt. `customers` is on legacy with a 30% canary to DRF, sticky on the `session` cookie (which
the gateways ignore): each client stays on one side, exactly the side its bucket names.

Which gateway served a request is read from the gateways' own access logs (each logs the
request's X-Request-ID), so the checks do not trust the proxy's word for it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from proxy.migration.canary import bucket, resource_salt, threshold
from tests.support import HEADERS, World, make_world

pytestmark = pytest.mark.e2e

ROUTES = """\
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings:
    backend: drf
    fallback: {backend: legacy, on: [404, 405, 501]}
  customers:
    backend: legacy
    canary: {backend: drf, percent: 30, sticky: "cookie:session"}
"""
BOOKING = {
    "customer_id": 7,
    "departure_id": 8,
    "travellers": 2,
    "currency": "AUD",
    "total_amount": "1234.5",
    "contact_email": "fallback@example.com",
}
CLIENTS = 40
CALLS_PER_CLIENT = 5
GATEWAY_LINE = re.compile(r'"(\S+) (\S+) HTTP/1\.[01]" (\d{3}) .*request_id=(\S+)')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("canary-fallback")
    routes = data / "routes.yaml"
    routes.write_text(ROUTES)
    with make_world(data) as world:
        world.start_legacy()
        world.start_drf()
        world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "1"})
        yield world


def new_id() -> str:
    return uuid.uuid4().hex


def gateway_calls(
    world: World, request_ids: set[str], each: int = 1
) -> dict[str, list[tuple[str, str, int]]]:
    """request id -> [(gateway, "METHOD path", status)] from the gateways' access logs, waiting
    (up to 5 s) until every id in `request_ids` has shown up `each` times (a replayed request
    is logged by both gateways, each in its own time)."""
    deadline = time.monotonic() + 5
    while True:
        found: dict[str, list[tuple[str, str, int]]] = {}
        for gateway in ("legacy", "drf"):
            for method, path, status, request_id in GATEWAY_LINE.findall(world.log(gateway)):
                entry = (gateway, f"{method} {path}", int(status))
                found.setdefault(request_id, []).append(entry)
        complete = all(len(found.get(request_id, ())) >= each for request_id in request_ids)
        if complete or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def proxy_lines(world: World, request_ids: set[str]) -> dict[str, dict[str, object]]:
    """request id -> the proxy's access-log line, waiting (up to 5 s) for all of `request_ids`
    (the proxy flushes its log every 0.1 s)."""
    deadline = time.monotonic() + 5
    while True:
        lines = world.log("proxy").splitlines()
        found = {}
        for line in lines:
            if line.startswith('{"time"'):
                entry = json.loads(line)
                found[entry["request_id"]] = entry
        if request_ids <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_post_bookings_resource_falls_back_to_legacy_and_creates_the_booking(
    world: World,
) -> None:
    proxy, admin = world.url("proxy"), world.url("proxy_admin")
    request_id = new_id()
    created = requests.post(
        f"{proxy}/bookings/resource",
        json=BOOKING,
        headers={**HEADERS, "X-Request-ID": request_id},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-ID"] == request_id
    booking_id = created.json()["id"]

    read = requests.get(f"{proxy}/bookings/{booking_id}", headers=HEADERS, timeout=10)
    assert read.status_code == 200  # served by DRF, from the same source systems
    assert read.json()["contact_email"] == BOOKING["contact_email"]

    calls = gateway_calls(world, {request_id}, each=2)
    assert sorted(calls[request_id]) == [
        ("drf", "POST /bookings/resource", 404),
        ("legacy", "POST /bookings/resource", 201),
    ]

    metrics = requests.get(f"{admin}/metrics", timeout=10).text
    assert (
        'strangler_fallbacks_total{code="404",from_backend="drf",resource="bookings",'
        'to_backend="legacy"} 1.0'
    ) in metrics
    debt = requests.get(f"{admin}/-/debt", timeout=10).json()
    assert [(e["shape"], e["count"], e["codes"], e["not_replayed"]) for e in debt] == [
        ("POST /bookings/resource", 1, {"404": 1}, 0)
    ]

    line = proxy_lines(world, {request_id})[request_id]
    assert (line["backend"], line["status"], line["fallback"]) == ("legacy", 201, "drf")


def test_canary_clients_stay_on_their_side(world: World) -> None:
    proxy = world.url("proxy")
    sent: dict[str, list[str]] = {}
    with requests.Session() as session:
        for n in range(CLIENTS):
            cookie = f"theme=dark; session=client-{n}"
            for call in range(CALLS_PER_CLIENT):
                request_id = new_id()
                response = session.get(
                    f"{proxy}/customers/{1 + (n + call) % 10}",
                    headers={**HEADERS, "Cookie": cookie, "X-Request-ID": request_id},
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                sent.setdefault(f"client-{n}", []).append(request_id)
    calls = gateway_calls(world, {rid for ids in sent.values() for rid in ids})
    salt, limit = resource_salt("customers"), threshold(30)
    sides: dict[str, str] = {}
    for client, ids in sent.items():
        served = {calls[rid][0][0] for rid in ids}
        assert all(len(calls[rid]) == 1 for rid in ids)
        assert len(served) == 1, (client, served)
        sides[client] = served.pop()
        expected = "drf" if bucket(client.encode(), salt) < limit else "legacy"
        assert sides[client] == expected, client
    on_drf = sum(side == "drf" for side in sides.values())
    assert 4 <= on_drf <= 20, on_drf  # 30% of 40 clients, and both sides really used

    lines = proxy_lines(world, {rid for ids in sent.values() for rid in ids})
    for client, ids in sent.items():
        assert {(lines[rid]["backend"], lines[rid]["canary"]) for rid in ids} == {
            (sides[client], sides[client] == "drf")
        }


def test_admin_shows_the_canary_and_the_fallback(world: World) -> None:
    routes = requests.get(f"{world.url('proxy_admin')}/-/routes", timeout=10).json()
    assert routes["resources"]["customers"]["canary"] == {
        "backend": "drf",
        "percent": 30.0,
        "sticky": "cookie:session",
    }
    assert routes["resources"]["bookings"]["fallback"] == {
        "backend": "legacy",
        "on": [404, 405, 501],
    }
