"""The auth system over HTTP: the token, introspection and revocation endpoints, and its store.

Most tests serve the app in this process on a loopback port, on a clock the test sets; the last
ones run `python -m source_systems auth` as the stack does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web

from source_systems.__main__ import parse_args
from source_systems.auth.app import Policy, create_app
from source_systems.auth.clients import DEMO_CLIENTS
from source_systems.auth.store import AuthStore
from stack.runner import Stack
from stack.services import AUTH_SYSTEM, source_system
from tests.support import ROOT, free_config, serve_on_loopback

NOW = 1_800_000_000
LIFETIME = 3600
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = {"grant_type": "client_credentials"}
Headers = dict[str, str]


def basic(client_id: str, secret: str) -> Headers:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


GATEWAY = basic("gateway", "gateway-secret")
DEMO = basic("demo-client", "demo-secret")
READER = basic("demo-reader", "demo-reader-secret")


class Clock:
    """Unix seconds the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Auth:
    session: aiohttp.ClientSession
    clock: Clock
    db: Path

    async def post(
        self, path: str, data: Any = None, headers: Headers | None = None, **kwargs: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, decoded JSON (None for an empty body) and headers of a POST."""
        async with self.session.post(path, data=data, headers=headers, **kwargs) as response:
            text = await response.text()
            body = await response.json() if text else None
            return response.status, body, dict(response.headers)

    async def token(self, auth: Headers = DEMO, **fields: str) -> str:
        status, body, _ = await self.post("/oauth/token", {**FORM, **fields}, auth)
        assert status == 200, body
        return str(body["access_token"])

    async def introspect(self, token: str) -> Any:
        status, body, _ = await self.post("/oauth/introspect", {"token": token}, GATEWAY)
        assert status == 200
        return body


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A freshly seeded database, made once: hashing the demo secrets takes a while."""
    path = tmp_path_factory.mktemp("seeded") / "auth.sqlite3"
    AuthStore.open(path, DEMO_CLIENTS).close()
    return path.read_bytes()


@pytest.fixture
async def auth(tmp_path: Path, seeded: bytes) -> AsyncIterator[Auth]:
    clock = Clock(NOW)
    db = tmp_path / "data" / "auth.sqlite3"
    db.parent.mkdir()
    db.write_bytes(seeded)
    runner = web.AppRunner(create_app(db, policy=Policy(LIFETIME, clock)))
    await runner.setup()
    port = await serve_on_loopback(runner)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        yield Auth(session, clock, db)
    await runner.cleanup()


def error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def without_date(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("Date", "Server")}


# --- the token endpoint -----------------------------------------------------------------------


async def test_a_token_for_basic_credentials(auth: Auth) -> None:
    status, body, headers = await auth.post("/oauth/token", FORM, DEMO)
    assert status == 200
    assert list(body) == ["access_token", "token_type", "expires_in", "scope"]
    assert TOKEN.fullmatch(body["access_token"])
    assert body | {"access_token": "-"} == {
        "access_token": "-",
        "token_type": "Bearer",
        "expires_in": LIFETIME,
        "scope": "read write",
    }
    assert without_date(headers) == {
        **NO_STORE,
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": str(len(json.dumps(body))),
    }


async def test_a_token_for_form_credentials(auth: Auth) -> None:
    fields = {**FORM, "client_id": "demo-reader", "client_secret": "demo-reader-secret"}
    status, body, headers = await auth.post("/oauth/token", fields)
    assert (status, body["token_type"], body["expires_in"], body["scope"]) == (
        200,
        "Bearer",
        LIFETIME,
        "read",
    )
    assert headers["Cache-Control"] == "no-store"
    assert (await auth.introspect(body["access_token"]))["client_id"] == "demo-reader"


async def test_basic_credentials_are_form_urldecoded(auth: Auth) -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before they go into Basic."""
    encoded = base64.b64encode(b"demo%2Dclient:demo-secre%74").decode()
    headers = {"Authorization": f"Basic {encoded}"}
    status, body, _ = await auth.post("/oauth/token", FORM, headers=headers)
    assert (status, body["scope"]) == (200, "read write")


INVALID_CLIENT = error("invalid_client", "client authentication failed")


@pytest.mark.parametrize(
    "credentials",
    [
        {"headers": basic("demo-client", "wrong")},
        {"headers": basic("nobody", "demo-secret")},
        {"headers": basic("demo-client", "")},
        {"data": {**FORM, "client_id": "demo-client", "client_secret": "wrong"}},
        {"data": {**FORM, "client_id": "nobody", "client_secret": "demo-secret"}},
    ],
    ids=["wrong-secret", "unknown-client", "empty-secret", "form-wrong-secret", "form-unknown"],
)
async def test_a_wrong_secret_or_unknown_client_is_invalid_client(
    auth: Auth, credentials: dict[str, Any]
) -> None:
    data = credentials.pop("data", FORM)
    status, body, headers = await auth.post("/oauth/token", data, **credentials)
    assert (status, body) == (401, INVALID_CLIENT)
    assert headers["WWW-Authenticate"] == 'Basic realm="auth"'
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("authorization", "description"),
    [
        ("Basic !!!", "malformed Basic credentials"),
        (f"Basic {base64.b64encode(b'no-colon').decode()}", "malformed Basic credentials"),
        ("Bearer abc", "client authentication must use HTTP Basic"),
    ],
)
async def test_malformed_client_authentication_is_invalid_client(
    auth: Auth, authorization: str, description: str
) -> None:
    headers = {"Authorization": authorization}
    status, body, answer = await auth.post("/oauth/token", FORM, headers=headers)
    assert (status, body) == (401, error("invalid_client", description))
    assert answer["WWW-Authenticate"] == 'Basic realm="auth"'


async def test_no_client_authentication_is_invalid_client(auth: Auth) -> None:
    status, body, _ = await auth.post("/oauth/token", {**FORM, "client_id": "demo-client"})
    assert (status, body) == (401, error("invalid_client", "client authentication is required"))


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (
            {"grant_type": "password", "username": "u", "password": "p"},
            {"headers": DEMO},
            error("unsupported_grant_type", "only client_credentials is supported"),
        ),
        ({}, {"headers": DEMO}, error("invalid_request", "grant_type is required")),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            {"headers": {**DEMO, "Content-Type": "application/x-www-form-urlencoded"}},
            error("invalid_request", "grant_type is repeated"),
        ),
        (
            b"grant_type=client_credentials&scope=\xff",
            {"headers": {**DEMO, "Content-Type": "application/x-www-form-urlencoded"}},
            error("invalid_request", "the body is not UTF-8"),
        ),
        (
            None,
            {"headers": DEMO, "json": FORM},
            error("invalid_request", "the body must be application/x-www-form-urlencoded"),
        ),
        (
            {**FORM, "client_secret": "demo-secret"},
            {"headers": DEMO},
            error("invalid_request", "more than one client authentication method"),
        ),
        (
            {**FORM, "client_id": "demo-reader"},
            {"headers": DEMO},
            error("invalid_request", "client_id does not match the Basic credentials"),
        ),
    ],
    ids=[
        "password-grant",
        "no-grant",
        "repeated",
        "not-utf-8",
        "json-body",
        "two-methods",
        "two-ids",
    ],
)
async def test_malformed_token_requests(
    auth: Auth, data: Any, kwargs: dict[str, Any], expected: dict[str, str]
) -> None:
    status, body, headers = await auth.post("/oauth/token", data, **kwargs)
    assert (status, body) == (400, expected)
    assert "WWW-Authenticate" not in headers
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("auth_as", "scope", "granted"),
    [
        (DEMO, "read", "read"),
        (DEMO, "write", "write"),
        (DEMO, "write read", "read write"),
        (DEMO, "read read", "read"),
        (READER, "read", "read"),
    ],
)
async def test_a_subset_of_the_clients_scopes_is_granted(
    auth: Auth, auth_as: Headers, scope: str, granted: str
) -> None:
    status, body, _ = await auth.post("/oauth/token", {**FORM, "scope": scope}, auth_as)
    assert (status, body["scope"]) == (200, granted)
    assert (await auth.introspect(body["access_token"]))["scope"] == granted


@pytest.mark.parametrize(
    ("auth_as", "scope", "description"),
    [
        (READER, "read write", "scope not allowed for this client: write"),
        (DEMO, "read admin", "scope not allowed for this client: admin"),
        (DEMO, "introspect", "scope not allowed for this client: introspect"),
        (DEMO, "", "scope must be space-separated scope tokens"),
        (DEMO, "read  write", "scope must be space-separated scope tokens"),
        (DEMO, 'read "write"', "scope must be space-separated scope tokens"),
    ],
)
async def test_a_scope_beyond_the_clients_is_invalid_scope(
    auth: Auth, auth_as: Headers, scope: str, description: str
) -> None:
    status, body, _ = await auth.post("/oauth/token", {**FORM, "scope": scope}, auth_as)
    assert (status, body) == (400, error("invalid_scope", description))


async def test_every_token_is_new(auth: Auth) -> None:
    tokens = {await auth.token() for _ in range(3)}
    assert len(tokens) == 3


# --- introspection ----------------------------------------------------------------------------


async def test_an_active_token_is_described(auth: Auth) -> None:
    token = await auth.token(READER)
    status, body, headers = await auth.post("/oauth/introspect", {"token": token}, GATEWAY)
    assert (status, body) == (
        200,
        {
            "active": True,
            "scope": "read",
            "client_id": "demo-reader",
            "token_type": "Bearer",
            "exp": NOW + LIFETIME,
            "iat": NOW,
        },
    )
    assert list(body) == ["active", "scope", "client_id", "token_type", "exp", "iat"]
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("token", ["never-issued", "x" * 43])
async def test_an_unknown_token_is_inactive(auth: Auth, token: str) -> None:
    assert await auth.introspect(token) == {"active": False}


async def test_a_token_expires_at_exp(auth: Auth) -> None:
    token = await auth.token()
    auth.clock.now = NOW + LIFETIME - 1
    assert (await auth.introspect(token))["active"] is True
    auth.clock.now = NOW + LIFETIME
    assert await auth.introspect(token) == {"active": False}


async def test_expired_tokens_are_purged_when_the_next_is_issued(auth: Auth) -> None:
    await auth.token()
    auth.clock.now = NOW + LIFETIME
    fresh = await auth.token()
    assert tokens_table(auth.db) == [(digest(fresh), "demo-client")]


async def test_a_revoked_token_is_inactive(auth: Auth) -> None:
    token, other = await auth.token(), await auth.token()
    status, body, headers = await auth.post("/oauth/revoke", {"token": token}, DEMO)
    assert (status, body, headers["Cache-Control"]) == (200, None, "no-store")
    assert await auth.introspect(token) == {"active": False}
    assert (await auth.introspect(other))["active"] is True


async def test_revoking_an_unknown_or_revoked_token_is_no_error(auth: Auth) -> None:
    """RFC 7009 §2.2: invalid tokens do not cause an error response."""
    token = await auth.token()
    for revoked in ("never-issued", token, token):
        assert (await auth.post("/oauth/revoke", {"token": revoked}, DEMO))[:2] == (200, None)


async def test_a_client_cannot_revoke_another_clients_token(auth: Auth) -> None:
    token = await auth.token(READER)
    status, body, _ = await auth.post("/oauth/revoke", {"token": token}, DEMO)
    assert (status, body) == (
        400,
        error("unauthorized_client", "the token was issued to another client"),
    )
    assert (await auth.introspect(token))["active"] is True


async def test_revocation_needs_client_authentication_and_a_token(auth: Auth) -> None:
    token = await auth.token()
    assert (await auth.post("/oauth/revoke", {"token": token}))[:2] == (
        401,
        error("invalid_client", "client authentication is required"),
    )
    assert (await auth.post("/oauth/revoke", {}, DEMO))[:2] == (
        400,
        error("invalid_request", "token is required"),
    )
    assert (await auth.introspect(token))["active"] is True


async def test_introspection_is_only_for_clients_with_the_introspect_scope(auth: Auth) -> None:
    token = await auth.token()
    status, body, headers = await auth.post("/oauth/introspect", {"token": token})
    assert (status, body) == (401, error("invalid_client", "client authentication is required"))
    assert headers["WWW-Authenticate"] == 'Basic realm="auth"'
    wrong = basic("gateway", "wrong")
    assert (await auth.post("/oauth/introspect", {"token": token}, wrong))[:2] == (
        401,
        INVALID_CLIENT,
    )
    assert (await auth.post("/oauth/introspect", {"token": token}, DEMO))[:2] == (
        403,
        error("unauthorized_client", "this client may not introspect tokens"),
    )
    assert (await auth.post("/oauth/introspect", {}, GATEWAY))[:2] == (
        400,
        error("invalid_request", "token is required"),
    )


async def test_other_paths_and_methods_are_json_errors(auth: Auth) -> None:
    async with auth.session.get("/oauth/token") as response:
        assert (response.status, await response.json()) == (405, {"error": "method not allowed"})
    assert (await auth.post("/oauth/authorize", FORM, DEMO))[:2] == (404, {"error": "not found"})


# --- the store: nothing usable in clear ------------------------------------------------------


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_table(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT digest, client_id FROM tokens ORDER BY issued_at").fetchall()


async def test_secrets_and_tokens_are_never_stored_in_clear(auth: Auth) -> None:
    token = await auth.token()
    with sqlite3.connect(auth.db) as conn:
        clients = dict(conn.execute("SELECT client_id, secret_hash FROM clients").fetchall())
    assert sorted(clients) == sorted(seed.client_id for seed in DEMO_CLIENTS)
    salts = set()
    for seed in DEMO_CLIENTS:
        kind, n, r, p, salt, key = clients[seed.client_id].split("$")
        assert (kind, n, r, p, len(bytes.fromhex(salt)), len(key)) == (
            "scrypt",
            "16384",
            "8",
            "1",
            16,
            64,
        )
        salts.add(salt)
    assert len(salts) == len(DEMO_CLIENTS)
    assert tokens_table(auth.db) == [(digest(token), "demo-client")]
    stored = b"".join(path.read_bytes() for path in auth.db.parent.iterdir())
    for clear in [token, *(seed.secret for seed in DEMO_CLIENTS)]:
        assert clear.encode() not in stored


# --- the process --------------------------------------------------------------------------------


def test_auth_defaults_to_port_5104_and_a_token_lifetime_of_an_hour() -> None:
    args = parse_args(["auth"], {})
    assert (args.port, args.db, args.token_lifetime) == (5104, Path("var/auth.sqlite3"), 3600)
    args = parse_args(["auth"], {"AUTH_PORT": "6104", "AUTH_TOKEN_LIFETIME": "60"})
    assert (args.port, args.token_lifetime) == (6104, 60)
    assert parse_args(["auth", "--token-lifetime", "5"], {}).token_lifetime == 5


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("auth")
    config = free_config(base / "data")
    service = source_system(config, AUTH_SYSTEM)
    with Stack(cwd=ROOT, log_dir=base / "logs") as stack:
        stack.start(replace(service, env={"AUTH_TOKEN_LIFETIME": "90"}))
        yield config.url(AUTH_SYSTEM)


def test_the_process_answers_health_and_issues_tokens(process: str) -> None:
    assert requests.get(f"{process}/healthz", timeout=5).json() == {
        "status": "ok",
        "system": "auth",
    }
    response = requests.post(
        f"{process}/oauth/token", data=FORM, auth=("demo-client", "demo-secret"), timeout=5
    )
    assert (response.status_code, response.json()["expires_in"]) == (200, 90)
    token = response.json()["access_token"]
    answer = requests.post(
        f"{process}/oauth/introspect",
        data={"token": token},
        auth=("gateway", "gateway-secret"),
        timeout=5,
    ).json()
    assert answer["exp"] - answer["iat"] == 90
