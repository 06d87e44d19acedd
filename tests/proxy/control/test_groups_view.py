"""proxy.control.groups_view: the groups in the dashboard's JSON (GET /-/stats), and a group's
flip as the dashboard sends it, seen in GET /-/stats and GET /-/audit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from proxy.control.admin import make_admin_app
from proxy.state import ProxyState
from tests.support.control import GROUP_ROUTES, make_state, write

Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def client(aiohttp_client: Client, tmp_path: Path) -> TestClient:
    state: ProxyState = make_state(write(tmp_path / "routes.yaml", GROUP_ROUTES))
    state.settings = replace(state.settings, admin_tokens=(("alice", "tok-a"),))
    return await aiohttp_client(make_admin_app(state))


def members(backend: str, *names: str) -> list[dict[str, str]]:
    return [{"resource": name, "backend": backend} for name in names]


async def test_stats_lists_each_group_and_each_resources_group(client: TestClient) -> None:
    body = await (await client.get("/-/stats")).json()
    assert body["groups"] == [
        {"group": "reservations",
         "members": members("legacy", "bookings", "customers", "payments")},
        {"group": "catalogue",
         "members": [*members("drf", "tours"), *members("legacy", "departures")]},
    ]  # fmt: skip
    assert {entry["resource"]: entry["group"] for entry in body["resources"]} == {
        "bookings": "reservations", "customers": "reservations", "payments": "reservations",
        "tours": "catalogue", "departures": "catalogue", "other": None,
    }  # fmt: skip


async def test_a_group_flip_shows_in_stats_and_audit(client: TestClient) -> None:
    response = await client.post(
        "/-/flip", json={"group": "catalogue", "backend": "drf", "reason": "dashboard"},
        headers={"Authorization": "Bearer tok-a"},
    )  # fmt: skip
    assert response.status == 200
    body = await (await client.get("/-/stats")).json()
    assert body["groups"][1] == {
        "group": "catalogue",
        "members": members("drf", "tours", "departures"),
    }
    [entry] = (await (await client.get("/-/audit")).json())["entries"]
    assert entry.pop("time").endswith("Z")
    assert entry == {
        "user": "alice", "group": "catalogue", "resource": "", "from": "", "to": "drf",
        "members": {"departures": {"from": "legacy", "to": "drf"}}, "kept": ["tours"],
        "reason": "dashboard", "action": "flip",
    }  # fmt: skip
