"""Shadow traffic, end to end: every resource served by legacy and shadowed to DRF at 100%.

The real stack (source systems, both gateways under gunicorn, the proxy as a process). Reads of
every resource and URL shape go through the proxy; once the shadow queue has drained, every one
of them was compared and matched: the parity the gateways already have. Then `customers` is
shadowed to a loopback server that relays to the real DRF gateway but changes one field of
each customer: the mismatch shows up in /-/diffs, naming the field with both values.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web

from tests.support import API_RESOURCES, HEADERS, World, make_world, serve_on_loopback

pytestmark = pytest.mark.e2e

RESOURCES = API_RESOURCES
PATHS = [
    *(f"/{resource}" for resource in RESOURCES),
    *(f"/{resource}/?page=2&max_per_page=7" for resource in RESOURCES),
    *(f"/{resource}/2" for resource in RESOURCES),
    *(f"/{resource}/999999" for resource in RESOURCES),
    "/bookings?page=10&max_per_page=20",
    "/bookings?page=-1&max_per_page=abc",
    "/bookings/02",
    "/bookings/abc",
    "/bookings/1/2",
    "/bookings/resource",
    "/customers/100",
    "/tours/1/departures",
    "/tours/999/departures",
    "/tours/1/itinerary_maps",
    "/itineraries/1/itinerary_maps?max_per_page=1&page=2",
    "/itineraries/1/{vid}",
    "/itineraries/1/{vid}/",
    "/itineraries/1/999999",
    "/itineraries/1/{vid}/itinerary_maps",
    "/itineraries/1/{vid}/departures",
    "/itineraries/1/{vid}/itinerary_maps/1",
]
HOST = "api.example.test"
ALTERED_EMAIL = "shadow@altered.example"
ALTERED_XML = b"<email>shadow@altered.example</email>"


def routes_text(world: World, altered_url: str, customers_shadow: str) -> str:
    lines = [
        "version: 1",
        "backends:",
        f"  legacy: {{url: {world.url('legacy')}}}",
        f"  drf: {{url: {world.url('drf')}}}",
        f"  drf_altered: {{url: {altered_url}}}",
        "default: legacy",
        "resources:",
    ]
    for resource in RESOURCES:
        shadow = customers_shadow if resource == "customers" else "drf"
        lines += [f"  {resource}:", "    backend: legacy"]
        lines += [f"    shadow: {{backend: {shadow}, percent: 100}}"]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def altering_relay(target: str) -> AsyncIterator[str]:
    """A loopback server relaying to `target`, changing every customer object's email."""
    session = aiohttp.ClientSession(auto_decompress=False)

    async def relay(request: web.Request) -> web.Response:
        headers = {name: value for name, value in request.headers.items()}
        async with session.request(
            request.method, target + request.path_qs, headers=headers
        ) as answer:
            body = await answer.read()
            content_type = answer.headers.get("Content-Type", "application/json")
            if request.path.startswith("/customers/") and answer.status == 200:
                if content_type.startswith("application/xml"):
                    body = re.sub(rb"<email>[^<]*</email>", ALTERED_XML, body, count=1)
                else:
                    document: Any = json.loads(body)
                    if "email" in document:
                        document["email"] = ALTERED_EMAIL
                    body = json.dumps(document).encode()
        return web.Response(status=answer.status, body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = await serve_on_loopback(runner)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("e2e-shadow")) as started:
        started.start_legacy()
        started.start_drf()
        yield started


@pytest.fixture(autouse=True)
def own_proxy(world: World) -> Iterator[None]:
    """Each test starts its proxy (fresh counters, its own routes file); stopped after it."""
    yield
    world.stack.stop("proxy")


def first_variation(world: World) -> int:
    record = requests.get(f"{world.url('operations')}/itineraries/1", timeout=5).json()
    return int(record["variation_ids"][0])


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def drained(session: aiohttp.ClientSession, admin: str, expected: int) -> dict[str, Any]:
    """The /-/diffs summary once `expected` copies were compared (at most 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        summary: dict[str, Any] = (await get_json(session, f"{admin}/-/diffs"))["resources"]
        compared = sum(f["match"] + f["mismatch"] + f["error"] for f in summary.values())
        if compared >= expected or time.monotonic() > deadline:
            return summary
        await asyncio.sleep(0.1)


async def test_every_resource_shadowed_to_drf_matches_then_a_changed_field_shows(
    world: World, tmp_path: Path
) -> None:
    vid = first_variation(world)
    paths = [path.format(vid=vid) for path in PATHS]
    routes = tmp_path / "routes.yaml"
    async with altering_relay(world.url("drf")) as altered:
        routes.write_text(routes_text(world, altered, customers_shadow="drf"))
        base = world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
        admin = world.url("proxy_admin")
        headers = {**HEADERS, "Host": HOST}
        sent: dict[str, int] = dict.fromkeys(RESOURCES, 0)
        async with aiohttp.ClientSession() as session:
            for path in paths:
                for method, extra in (("GET", headers), ("HEAD", headers), ("GET", {"Host": HOST})):
                    async with session.request(method, base + path, headers=extra) as response:
                        await response.read()
                    sent[path.strip("/").split("/")[0].split("?")[0]] += 1
            summary = await drained(session, admin, sum(sent.values()))
            for resource in RESOURCES:
                figures = summary[resource]
                assert (figures["match"], figures["mismatch"], figures["error"]) == (
                    sent[resource],
                    0,
                    0,
                ), resource
                assert figures["dropped"] == 0 and figures["match_rate"] == 1.0

            routes.write_text(routes_text(world, altered, customers_shadow="drf_altered"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                table = await get_json(session, f"{admin}/-/routes")
                if table["resources"]["customers"]["shadow"]["backend"] == "drf_altered":
                    break
                await asyncio.sleep(0.05)
            async with session.get(f"{base}/customers/3", headers=headers) as response:
                assert response.status == 200
                live = await response.json()
            await drained(session, admin, sum(sent.values()) + 1)
            diffs = await get_json(session, f"{admin}/-/diffs?resource=customers")

    assert live["email"] != ALTERED_EMAIL
    assert (diffs["match"], diffs["mismatch"]) == (sent["customers"], 1)
    (mismatch,) = diffs["mismatches"]
    assert (mismatch["method"], mismatch["path"]) == ("GET", "/customers/3")
    assert (mismatch["backend"], mismatch["shadow_backend"]) == ("legacy", "drf_altered")
    assert (mismatch["live_status"], mismatch["shadow_status"]) == (200, 200)
    assert mismatch["differences"] == [
        {
            "field": "$.email",
            "kind": "changed",
            "class": "value",
            "live": live["email"],
            "shadow": ALTERED_EMAIL,
        }
    ]


async def test_xml_answers_are_compared_as_trees_and_a_changed_element_shows_its_path(
    world: World, tmp_path: Path
) -> None:
    """The same reads asking XML (Accept, and ?format=xml): every copy matches; then a changed
    <email> element is reported at its path with both values."""
    vid = first_variation(world)
    paths = [path.format(vid=vid) for path in PATHS if "?" not in path][:40]
    routes = tmp_path / "routes.yaml"
    async with altering_relay(world.url("drf")) as altered:
        routes.write_text(routes_text(world, altered, customers_shadow="drf"))
        base = world.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
        admin = world.url("proxy_admin")
        xml = {**HEADERS, "Host": HOST, "Accept": "application/xml"}
        sent = 0
        async with aiohttp.ClientSession() as session:
            for path in paths:
                for target, headers in ((path, xml), (path + "?format=xml", {**HEADERS})):
                    async with session.get(base + target, headers=headers) as response:
                        body = await response.read()
                        if response.status == 200:
                            assert response.headers["Content-Type"].startswith("application/xml")
                            assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
                    sent += 1
            summary = await drained(session, admin, sent)
            compared = sum(f["match"] + f["mismatch"] + f["error"] for f in summary.values())
            assert compared == sent
            assert sum(f["mismatch"] + f["error"] + f["noise"] for f in summary.values()) == 0

            routes.write_text(routes_text(world, altered, customers_shadow="drf_altered"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                table = await get_json(session, f"{admin}/-/routes")
                if table["resources"]["customers"]["shadow"]["backend"] == "drf_altered":
                    break
                await asyncio.sleep(0.05)
            async with session.get(f"{base}/customers/3", headers=xml) as response:
                live = await response.read()
            await drained(session, admin, sent + 1)
            diffs = await get_json(session, f"{admin}/-/diffs?resource=customers")
    email = re.search(rb"<email>([^<]*)</email>", live)
    assert email is not None
    (mismatch,) = [m for m in diffs["mismatches"] if m["class"] != "noise"]
    assert (mismatch["path"], mismatch["class"]) == ("/customers/3", "value")
    assert mismatch["differences"] == [
        {
            "field": "$.email",
            "kind": "changed",
            "class": "value",
            "live": email.group(1).decode(),
            "shadow": ALTERED_EMAIL,
        }
    ]
