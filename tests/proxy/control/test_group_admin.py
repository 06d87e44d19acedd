"""POST /-/flip and POST /-/rollback (a resource or a group) and who is recorded: named admin
tokens, the unnamed one as `admin`; through aiohttp's test server (real loopback sockets), and
once through a real `python -m proxy serve` with two workers and a token file."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.control.admin import make_admin_app
from proxy.state import ProxyState
from tests.support.control import GROUP_ROUTES, make_state, write
from tests.support.raw_http import ProxyProcess

Client = Callable[..., Awaitable[TestClient]]
TOKENS = (("alice", "tok-alice-1"), ("bob", "tok-bob-2"))
UNNAMED = "the-old-single-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def state(tmp_path: Path) -> ProxyState:
    state = make_state(write(tmp_path / "routes.yaml", GROUP_ROUTES), admin_token=UNNAMED)
    state.settings = replace(state.settings, admin_tokens=TOKENS)
    return state


@pytest.fixture
async def client(aiohttp_client: Client, state: ProxyState) -> TestClient:
    return await aiohttp_client(make_admin_app(state))


def audit(state: ProxyState) -> list[dict[str, Any]]:
    path = state.settings.routes.with_name("routes.audit.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def envelope(status: int, message: str) -> dict[str, object]:
    return {"http_status_code": status, "message": message, "errors": []}


async def test_a_group_flip_by_a_named_token_records_its_name(
    client: TestClient, state: ProxyState
) -> None:
    body = {"group": "reservations", "backend": "drf", "reason": "contract green"}
    response = await client.post("/-/flip", json=body, headers=bearer("tok-alice-1"))
    assert response.status == 200
    answer = await response.json()
    assert answer.pop("time").endswith("Z")
    moved = {"from": "legacy", "to": "drf"}
    assert answer == {
        "user": "alice", "group": "reservations", "resource": "", "from": "", "to": "drf",
        "members": {"bookings": moved, "customers": moved, "payments": moved}, "kept": [],
        "reason": "contract green", "action": "flip", "changed": True,
        "sha256": state.table.sha256,
    }  # fmt: skip
    assert {name: state.table.backend_for(name) for name in ("bookings", "customers", "payments")} \
        == {"bookings": "drf", "customers": "drf", "payments": "drf"}  # fmt: skip
    [entry] = audit(state)
    assert (entry["user"], entry["group"], entry["members"]["customers"]) == (
        "alice", "reservations", moved
    )  # fmt: skip

    response = await client.post(
        "/-/rollback", json={"group": "reservations"}, headers=bearer("tok-bob-2")
    )
    assert response.status == 200
    answer = await response.json()
    assert (answer["user"], answer["action"], answer["changed"]) == ("bob", "rollback", True)
    assert state.settings.routes.read_text() == GROUP_ROUTES
    assert [(e["user"], e["action"]) for e in audit(state)] == [
        ("alice", "flip"), ("bob", "rollback")
    ]  # fmt: skip


async def test_the_unnamed_token_is_recorded_as_admin(
    client: TestClient, state: ProxyState
) -> None:
    response = await client.put("/-/routes/tours", json={"backend": "legacy"},
                                headers=bearer(UNNAMED))  # fmt: skip
    assert (response.status, (await response.json())["user"]) == (200, "admin")
    response = await client.post("/-/flip", json={"resource": "departures", "backend": "drf"},
                                 headers=bearer("tok-bob-2"))  # fmt: skip
    assert (response.status, (await response.json())["user"]) == (200, "bob")
    assert [(e["user"], e["resource"], e["to"]) for e in audit(state)] == [
        ("admin", "tours", "legacy"), ("bob", "departures", "drf")
    ]  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), bearer("tok-alice-1x"), bearer("tok-alice"), {"Authorization": "alice"},
     {"Authorization": "Basic tok-alice-1"}, {"Authorization": "Bearer alice:tok-alice-1"},
     {"Authorization": "Bearer "}],
)  # fmt: skip
async def test_a_wrong_token_is_401_and_changes_nothing(
    client: TestClient, state: ProxyState, headers: dict[str, str]
) -> None:
    for path, body in (("/-/flip", {"group": "reservations", "backend": "drf"}),
                       ("/-/rollback", {"group": "reservations"})):  # fmt: skip
        response = await client.post(path, json=body, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == envelope(
            401, "Unauthorized: send Authorization: Bearer <admin token>."
        )
    assert (state.settings.routes.read_text(), audit(state)) == (GROUP_ROUTES, [])


async def test_bad_requests(client: TestClient, state: ProxyState) -> None:
    flip = (
        'Bad request: send {"group": "<name>", "backend": "<name>"} or '
        '{"resource": "<name>", "backend": "<name>"}.'
    )
    rollback = 'Bad request: send {"group": "<name>"} or {"resource": "<name>"}.'
    cases = [
        ("/-/flip", {"backend": "drf"}, 400, flip),
        ("/-/flip", {"group": "reservations"}, 400, flip),
        ("/-/flip", {"group": "reservations", "resource": "bookings", "backend": "drf"}, 400, flip),
        ("/-/flip", {"group": 3, "backend": "drf"}, 400, flip),
        ("/-/flip", {"group": "reservations", "backend": "drf", "reason": 1}, 400,
         "Bad request: reason must be a string."),
        ("/-/flip", {"group": "nope", "backend": "drf"}, 400,
         "Bad request: unknown group 'nope' (groups: catalogue, reservations)"),
        ("/-/flip", {"group": "reservations", "backend": "drff"}, 400,
         "Bad request: unknown backend 'drff' (backends: drf, legacy)"),
        ("/-/rollback", {}, 400, rollback),
        ("/-/rollback", {"group": "nope"}, 400,
         "Bad request: unknown group 'nope' (groups: catalogue, reservations)"),
    ]  # fmt: skip
    for path, body, status, message in cases:
        response = await client.post(path, json=body, headers=bearer("tok-alice-1"))
        assert (response.status, await response.json()) == (status, envelope(status, message))
    assert (state.settings.routes.read_text(), audit(state)) == (GROUP_ROUTES, [])


async def test_a_group_already_there_is_not_recorded(client: TestClient, state: ProxyState) -> None:
    await client.post("/-/flip", json={"group": "catalogue", "backend": "drf"},
                      headers=bearer("tok-alice-1"))  # fmt: skip
    response = await client.post("/-/flip", json={"group": "catalogue", "backend": "drf"},
                                 headers=bearer("tok-alice-1"))  # fmt: skip
    answer = await response.json()
    assert (answer["changed"], answer["members"], answer["kept"]) == (
        False, {}, ["tours", "departures"]
    )  # fmt: skip
    assert len(audit(state)) == 1


async def test_routes_and_index_list_the_groups(client: TestClient) -> None:
    body = await (await client.get("/-/routes")).json()
    assert body["groups"] == {
        "reservations": ["bookings", "customers", "payments"], "catalogue": ["tours", "departures"]
    }  # fmt: skip
    response = await client.get("/-/", headers={"Accept": "application/json"})
    endpoints = (await response.json())["endpoints"]
    assert {"POST /-/flip", "POST /-/rollback"} <= set(endpoints)


def post(url: str, body: dict[str, str], token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {**bearer(token), "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_served_proxy_with_workers_reads_the_token_file(
    tmp_path: Path, proxy_process: Callable[..., ProxyProcess]
) -> None:
    routes = write(tmp_path / "routes.yaml", GROUP_ROUTES)
    tokens = tmp_path / "tokens"
    tokens.write_text("# the team\nalice:tok-alice-1\n\n  bob : tok:with:colons  \n")
    env = {"STRANGLER_ADMIN_TOKENS_FILE": str(tokens), "STRANGLER_ADMIN_TOKEN": UNNAMED,
           "STRANGLER_ACCESS_LOG": "0"}  # fmt: skip
    running = proxy_process(routes, "--workers", "2", env=env)
    admin = f"http://127.0.0.1:{running.admin_port}"
    flip = {"group": "reservations", "backend": "drf"}
    assert post(f"{admin}/-/flip", flip, "tok-alice-2")[0] == 401
    status, answer = post(f"{admin}/-/flip", flip, "tok:with:colons")
    assert (status, answer["user"], answer["group"]) == (200, "bob", "reservations")
    status, answer = post(f"{admin}/-/rollback", {"group": "reservations"}, UNNAMED)
    assert (status, answer["user"]) == (200, "admin")
    entries = [
        json.loads(line) for line in (tmp_path / "routes.audit.jsonl").read_text().splitlines()
    ]
    assert [(e["user"], e["action"], e["group"]) for e in entries] == [
        ("bob", "flip", "reservations"), ("admin", "rollback", "reservations")
    ]  # fmt: skip
    log = (tmp_path / "proxy.log").read_text()
    assert "tok-alice-1" not in log and "tok:with:colons" not in log and UNNAMED not in log
