"""Dry runs on a real server: answered exactly as the write would be, and nothing stored.

Each test serves reservations in-process on loopback (an aiohttp test server) on a database of
its own, so the store can be dumped before and after; the last test runs the real process to
check that STRANGLER_SHADOW_SECRET reaches it from its environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, WINDOW, sign
from source_systems.app import STORE, create_app
from source_systems.reservations import SYSTEM
from stack.runner import Stack
from stack.services import source_system
from tests.support import ROOT, free_config

SECRET = "source-systems-test-secret"
REFUSED = (403, b'{"error": "invalid dry-run signature"}')
BOOKING = {"customer_id": 3, "departure_id": 4, "travellers": 2, "status": "pending"}

Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Reservations = TestClient[web.Request, web.Application]


def app(tmp_path: Path, secret: str | None = SECRET) -> web.Application:
    return create_app(SYSTEM, tmp_path / "reservations.sqlite3", secret)


@pytest.fixture
async def client(aiohttp_client: Client, tmp_path: Path) -> Reservations:
    return await aiohttp_client(app(tmp_path))


def dump(client: Reservations) -> dict[str, list[Any]]:
    return client.app[STORE].dump()


def signed(method: str, target: str, body: bytes, **changes: Any) -> dict[str, str]:
    """Genuine dry-run headers of a request (`changes`: `secret` or `now` made wrong)."""
    secret, now = changes.get("secret", SECRET), changes.get("now", time.time())
    return sign(secret, method, target, body, now)


async def answer(
    client: Reservations, method: str, target: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with client.request(method, target, data=body, headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.read()


WRITES = [
    ("POST", "/bookings", BOOKING),
    ("POST", "/bookings", {**BOOKING, "id": 500}),
    ("POST", "/bookings?note=x", BOOKING),
    ("PUT", "/bookings/3", BOOKING),
    ("PATCH", "/bookings/3", {"status": "cancelled"}),
    ("POST", "/bookings", {**BOOKING, "id": 3}),  # 409: taken
    ("POST", "/bookings", {**BOOKING, "id": -1}),  # 400
    ("PUT", "/bookings/999", BOOKING),  # 404
    ("PATCH", "/bookings/999", {"status": "cancelled"}),  # 404
    ("PATCH", "/bookings/3", [1, 2]),  # 400: not an object
    ("POST", "/nowhere", BOOKING),  # 404
]


@pytest.mark.parametrize(("method", "target", "fields"), WRITES)
async def test_a_dry_run_answers_what_the_write_answers_and_stores_nothing(
    client: Reservations, method: str, target: str, fields: Any
) -> None:
    body = json.dumps(fields).encode()
    before = dump(client)
    dry = await answer(client, method, target, body, signed(method, target, body))
    assert dump(client) == before
    assert dry == await answer(client, method, target, body, {})


async def test_dry_runs_do_not_use_up_ids(client: Reservations) -> None:
    body = json.dumps(BOOKING).encode()
    expected = (201, json.dumps({"id": 201, **BOOKING}, separators=(",", ":")).encode())
    for _ in range(2):
        headers = signed("POST", "/bookings", body)
        assert await answer(client, "POST", "/bookings", body, headers) == expected


async def test_a_read_with_a_genuine_dry_run_answers_as_usual(client: Reservations) -> None:
    target = "/bookings?ids=3,4&limit=2"
    dry = await answer(client, "GET", target, b"", signed("GET", target, b""))
    assert dry == await answer(client, "GET", target, b"", {})
    assert dry[0] == 200


def forged(method: str, target: str, body: bytes) -> list[dict[str, str]]:
    genuine = signed(method, target, body)
    return [
        signed(method, target, body, secret="not-the-secret"),
        signed(method, target, body, now=time.time() - WINDOW - 1),  # replayed
        signed(method, target, body, now=time.time() + WINDOW + 5),  # from the future
        {SHADOW_HEADER: "dry-run"},  # no signature
        {SIGNATURE_HEADER: genuine[SIGNATURE_HEADER]},  # no X-Strangler-Shadow
        {**genuine, SHADOW_HEADER: "yes"},
        {**genuine, SIGNATURE_HEADER: "t=abc,v1=00"},  # malformed
        {**genuine, SIGNATURE_HEADER: ""},
        signed(method, target, body + b" "),  # another body
        signed(method, target + "?x=1", body),  # another target
        signed("PUT" if method == "POST" else "POST", target, body),  # another method
    ]


FORGERIES = range(len(forged("POST", "/bookings", b"")))


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize(
    ("method", "target", "fields"),
    [("POST", "/bookings", BOOKING), ("PATCH", "/bookings/3", {"status": "cancelled"})],
)
async def test_anything_but_a_genuine_dry_run_is_refused_and_changes_nothing(
    client: Reservations, method: str, target: str, fields: Any, forgery: int
) -> None:
    body = json.dumps(fields).encode()
    before = dump(client)
    headers = forged(method, target, body)[forgery]
    assert await answer(client, method, target, body, headers) == REFUSED
    assert dump(client) == before


async def test_a_forged_read_is_refused_too(client: Reservations) -> None:
    headers = signed("GET", "/bookings/3", b"", secret="not-the-secret")
    assert await answer(client, "GET", "/bookings/3", b"", headers) == REFUSED


async def test_without_a_secret_every_dry_run_is_refused(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    client = await aiohttp_client(app(tmp_path, secret=None))
    body = json.dumps(BOOKING).encode()
    before = dump(client)
    for secret in (SECRET, ""):
        headers = signed("POST", "/bookings", body, secret=secret)
        assert await answer(client, "POST", "/bookings", body, headers) == REFUSED
    assert dump(client) == before
    assert (await answer(client, "POST", "/bookings", body, {}))[0] == 201


def test_the_process_takes_its_secret_from_the_environment(tmp_path: Path) -> None:
    config = free_config(tmp_path / "data", shadow_secret=SECRET)
    url = config.url("reservations")
    body = json.dumps(BOOKING).encode()
    with Stack(cwd=ROOT, log_dir=tmp_path / "logs") as stack:
        stack.start(source_system(config, "reservations"))
        dry = requests.post(
            f"{url}/bookings", data=body, headers=signed("POST", "/bookings", body), timeout=5
        )
        count = requests.get(f"{url}/bookings?limit=0", timeout=5).json()["count"]
        real = requests.post(f"{url}/bookings", data=body, timeout=5)
    assert (dry.status_code, count) == (201, 200)
    assert (real.status_code, real.content) == (dry.status_code, dry.content)
    assert "dry runs accepted when signed" in (tmp_path / "logs" / "reservations.log").read_text()
