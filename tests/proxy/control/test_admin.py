"""proxy.control.admin: the admin app through aiohttp's test server (real loopback sockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from proxy.control.admin import make_admin_app
from proxy.state import ProxyState
from tests.support.control import ROUTES, make_state, write

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def state(tmp_path: Path) -> ProxyState:
    return make_state(write(tmp_path / "routes.yaml"), admin_token=TOKEN)


@pytest.fixture
async def client(aiohttp_client: Client, state: ProxyState) -> TestClient:
    return await aiohttp_client(make_admin_app(state))


def audit(state: ProxyState) -> list[dict[str, str]]:
    path = state.settings.routes.with_name("routes.audit.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def envelope(status: int, message: str) -> dict[str, object]:
    return {"http_status_code": status, "message": message, "errors": []}


async def test_healthz_and_readyz(client: TestClient, state: ProxyState) -> None:
    response = await client.get("/-/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})
    response = await client.get("/-/readyz")
    assert (response.status, await response.json()) == (
        200,
        {"status": "ready", "sha256": state.table.sha256},
    )
    state.draining = True
    response = await client.get("/-/readyz")
    assert response.status == 503
    assert await response.json() == envelope(
        503, "Service unavailable: the proxy is shutting down."
    )
    response = await client.get("/-/healthz")
    assert response.status == 200


async def test_routes(client: TestClient, state: ProxyState) -> None:
    response = await client.get("/-/routes")
    assert response.status == 200
    body = await response.json()
    assert body["loaded_at"].endswith("Z")
    del body["loaded_at"]
    progress_window = body["progress"]["window_seconds"]  # since the first sample: about 0
    plain: dict[str, object] = {
        "methods": {}, "canary": None, "shadow": None, "fallback": None, "guard": None,
        "clients": [],
    }  # fmt: skip
    idle = {"requests_per_second": 0.0, "error_rate": None}
    assert body == {
        "version": 1,
        "source": str(state.settings.routes),
        "sha256": state.table.sha256,
        "last_reload_error": None,
        "default": "legacy",
        "backends": {"legacy": {"url": "http://127.0.0.1:5000"},
                     "drf": {"url": "http://127.0.0.1:8000"}},
        "resources": {
            "bookings": {**plain, "backend": "legacy"},
            "customers": {**plain, "backend": "legacy"},
            "itineraries": {**plain, "backend": "legacy", "methods": {"GET": "drf"}},
            "tours": {**plain, "backend": "drf"},
        },
        "traffic": {name: idle for name in ("bookings", "customers", "itineraries", "tours",
                                            "other")},
        "traffic_window_seconds": 10.0,
        "groups": {},
        "store": None,  # no --store: the table is the file
        "stages": {"bookings": "legacy", "customers": "legacy", "itineraries": "legacy",
                   "tours": "retired", "other": "legacy"},
        "progress": {
            "stages": {"legacy": 3, "shadow": 0, "canary": 0, "new": 0, "retired": 1},
            "shares": {}, "window_seconds": progress_window,
            "text": "3 legacy, 1 retired; last 5m: no requests",
        },
    }  # fmt: skip


async def test_routes_shows_the_last_reload_error(client: TestClient, state: ProxyState) -> None:
    state.last_reload_error = "routes.yaml:3: oops"
    body = await (await client.get("/-/routes")).json()
    assert body["last_reload_error"] == "routes.yaml:3: oops"


async def test_metrics(client: TestClient, state: ProxyState) -> None:
    state.metrics.request_done("tours", "drf", "GET", 200, 0.01)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    assert (
        'strangler_requests_total{backend="drf",code="200",method="GET",resource="tours"} 1.0'
        in text.splitlines()
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}],
)  # fmt: skip
async def test_flip_needs_the_token(
    client: TestClient,
    state: ProxyState,
    headers: dict[str, str],
) -> None:
    response = await client.put("/-/routes/bookings", json={"backend": "drf"}, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await response.json() == envelope(
        401, "Unauthorized: send Authorization: Bearer <admin token>."
    )
    assert state.settings.routes.read_text() == ROUTES
    assert audit(state) == []


async def test_no_token_configured_refuses_every_change(
    aiohttp_client: Client, tmp_path: Path
) -> None:
    state = make_state(write(tmp_path / "routes.yaml"), admin_token=None)
    client = await aiohttp_client(make_admin_app(state))
    response = await client.put("/-/routes/bookings", json={"backend": "drf"}, headers=AUTH)
    assert response.status == 401
    response = await client.post(
        "/-/routes/bookings/rollback", headers={"Authorization": "Bearer "}
    )
    assert response.status == 401
    assert state.settings.routes.read_text() == ROUTES


async def test_flip_writes_the_file_the_audit_and_reloads(
    client: TestClient,
    state: ProxyState,
) -> None:
    body = {"backend": "drf", "reason": "contract green"}
    response = await client.put("/-/routes/bookings", json=body, headers=AUTH)
    assert response.status == 200
    answer = await response.json()
    assert answer.pop("time").endswith("Z")
    assert answer == {
        "user": "admin", "resource": "bookings", "from": "legacy", "to": "drf",
        "reason": "contract green", "action": "flip", "changed": True,
        "sha256": state.table.sha256,
    }  # fmt: skip
    assert state.table.routes["bookings"].backend == "drf"
    assert state.settings.routes.read_text() == ROUTES.replace(
        "bookings: legacy   ", "bookings: drf   "
    )
    [entry] = audit(state)
    assert (entry["user"], entry["resource"], entry["from"], entry["to"], entry["action"]) == (
        "admin", "bookings", "legacy", "drf", "flip"
    )  # fmt: skip
    response = await client.post(
        "/-/routes/bookings/rollback", json={"reason": "5xx"}, headers=AUTH
    )
    assert response.status == 200
    assert (await response.json())["to"] == "legacy"
    assert state.settings.routes.read_text() == ROUTES
    assert state.table.routes["bookings"].backend == "legacy"


async def test_flip_errors(client: TestClient, state: ProxyState) -> None:
    cases = [
        ({"backend": "drff"}, 400, "Bad request: unknown backend 'drff' (backends: drf, legacy)"),
        ({"backend": 3}, 400, 'Bad request: send {"backend": "<name>", "reason": "<text>"}.'),
        ({"reason": "x"}, 400, 'Bad request: send {"backend": "<name>", "reason": "<text>"}.'),
        ({"backend": "drf", "reason": 1}, 400, "Bad request: reason must be a string."),
    ]
    for body, status, message in cases:
        response = await client.put("/-/routes/bookings", json=body, headers=AUTH)
        assert (response.status, await response.json()) == (status, envelope(status, message))
    response = await client.put("/-/routes/bookings", data=b"{not json", headers=AUTH)
    assert response.status == 400
    response = await client.put("/-/routes/other", json={"backend": "drf"}, headers=AUTH)
    assert await response.json() == envelope(400, "Bad request: invalid resource name 'other'")
    assert state.settings.routes.read_text() == ROUTES
    assert audit(state) == []


async def test_flip_of_an_invalid_file_is_a_conflict(
    client: TestClient,
    state: ProxyState,
) -> None:
    state.settings.routes.write_text(ROUTES.replace("tours: drf", "tours: drff"))
    response = await client.put("/-/routes/bookings", json={"backend": "drf"}, headers=AUTH)
    assert response.status == 409
    assert await response.json() == {
        "http_status_code": 409,
        "message": "Conflict: routes.yaml is invalid; fix it first.",
        "errors": [f"{state.settings.routes}:17: unknown backend 'drff' for resource 'tours'"],
    }


async def test_unknown_paths_answer_the_envelope(client: TestClient) -> None:
    response = await client.get("/-/nope")
    assert (response.status, await response.json()) == (404, envelope(404, "Not Found"))
    response = await client.delete("/-/routes/bookings")
    assert response.status == 405
    assert response.headers["Allow"]


async def test_index(client: TestClient) -> None:
    response = await client.get("/-/", headers={"Accept": "application/json"})
    assert response.status == 200
    assert "PUT /-/routes/{resource}" in (await response.json())["endpoints"]
    response = await client.get("/-/")  # a browser, or anything not asking for JSON only
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


async def test_routes_reports_live_traffic(client: TestClient, state: ProxyState) -> None:
    await client.get("/-/routes")
    for code in (200, 200, 200, 502):
        state.metrics.request_done("tours", "drf", "GET", code, 0.01)
    await asyncio.sleep(0.25)  # the tracker takes at most one snapshot per 0.2 s
    body = await (await client.get("/-/routes")).json()
    tours = body["traffic"]["tours"]
    assert tours["requests_per_second"] > 0
    assert tours["error_rate"] == 0.25
    assert body["traffic"]["bookings"] == {"requests_per_second": 0.0, "error_rate": None}
