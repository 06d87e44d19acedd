"""The HTTP side of the auth system: the token, introspection and revocation endpoints.

Every `/oauth/*` answer carries `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749
§5.1). Errors are RFC 6749 §5.2 JSON, `{"error": "invalid_client", "error_description": ...}`;
`invalid_client` is a 401 with `WWW-Authenticate: Basic realm="auth"` whichever way the client
sent its credentials, as RFC 7235 wants a challenge on every 401.

/oauth/token (RFC 6749 §4.4): `grant_type=client_credentials`, optional `scope` (a subset of
the client's; all of them when absent) -> 200
`{"access_token", "token_type": "Bearer", "expires_in", "scope"}`.

/oauth/introspect (RFC 7662): only for clients holding the `introspect` scope (the gateways,
authenticating like any client); others get 403 `unauthorized_client`. `token=...` -> 200
`{"active": false}` for an unknown, expired or revoked token, else
`{"active": true, "scope", "client_id", "token_type": "Bearer", "exp", "iat"}`.

/oauth/revoke (RFC 7009): a client revokes one of its own tokens -> 200, empty; an unknown token
is no error (§2.2), another client's token is refused (400 `unauthorized_client`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from source_systems.app import json_errors
from source_systems.auth.clients import DEMO_CLIENTS, INTROSPECT, ClientSeed
from source_systems.auth.hashing import SecretCheck, hash_secret
from source_systems.auth.protocol import (
    OAuthError,
    client_credentials,
    granted_scopes,
    single_values,
)
from source_systems.auth.store import AuthStore, Client

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_CHALLENGE = 'Basic realm="auth"'
DEFAULT_LIFETIME = 3600


@dataclass(frozen=True)
class Policy:
    """How long tokens live, and the clock (Unix seconds) they are issued and judged by."""

    token_lifetime: int = DEFAULT_LIFETIME
    clock: Callable[[], float] = time.time

    def now(self) -> int:
        return int(self.clock())


STORE = web.AppKey("auth_store", AuthStore)
POLICY = web.AppKey("auth_policy", Policy)
SECRETS = web.AppKey("auth_secrets", SecretCheck)
# What an unknown client's secret is checked against, so it takes as long as a known one's.
DECOY = web.AppKey("auth_decoy", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def oauth_json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=NO_STORE)


def oauth_error(error: OAuthError) -> web.Response:
    response = oauth_json(
        {"error": error.error, "error_description": error.description}, error.status
    )
    if error.status == 401:
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    return response


def oauth_endpoint(
    handler: Callable[[web.Request, dict[str, str]], Awaitable[web.Response]],
) -> Handler:
    """`handler` given the request's form fields; its `OAuthError`s become RFC 6749 errors."""

    async def endpoint(request: web.Request) -> web.Response:
        try:
            return await handler(request, await form_of(request))
        except OAuthError as error:
            return oauth_error(error)

    return endpoint


async def form_of(request: web.Request) -> dict[str, str]:
    if request.content_type != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    try:
        text = (await request.read()).decode()
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "the body is not UTF-8") from exc
    return single_values(parse_qsl(text, keep_blank_values=True))


async def authenticate(request: web.Request, form: dict[str, str]) -> Client:
    """The client the request's credentials prove; `invalid_client` otherwise."""
    credentials = client_credentials(request.headers.get("Authorization"), form)
    client = request.app[STORE].client(credentials.client_id)
    stored = request.app[DECOY] if client is None else client.secret_hash
    matches = await request.app[SECRETS].matches(credentials.secret, stored)
    if client is None or not matches:
        raise OAuthError("invalid_client", "client authentication failed")
    return client


async def issue_token(request: web.Request, form: dict[str, str]) -> web.Response:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
    client = await authenticate(request, form)
    scopes = granted_scopes(form.get("scope"), client.scopes)
    policy = request.app[POLICY]
    token = request.app[STORE].issue(client.client_id, scopes, policy.now(), policy.token_lifetime)
    return oauth_json(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": policy.token_lifetime,
            "scope": " ".join(scopes),
        }
    )


def token_field(form: dict[str, str]) -> str:
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    return token


async def introspect(request: web.Request, form: dict[str, str]) -> web.Response:
    client = await authenticate(request, form)
    if INTROSPECT not in client.scopes:
        raise OAuthError("unauthorized_client", "this client may not introspect tokens", 403)
    found = request.app[STORE].token(token_field(form))
    if found is None or not found.active(request.app[POLICY].now()):
        return oauth_json({"active": False})
    return oauth_json(
        {
            "active": True,
            "scope": " ".join(found.scopes),
            "client_id": found.client_id,
            "token_type": "Bearer",
            "exp": found.expires_at,
            "iat": found.issued_at,
        }
    )


async def revoke(request: web.Request, form: dict[str, str]) -> web.Response:
    client = await authenticate(request, form)
    token = token_field(form)
    store = request.app[STORE]
    found = store.token(token)
    if found is not None and found.client_id != client.client_id:
        raise OAuthError("unauthorized_client", "the token was issued to another client")
    if found is not None:
        store.revoke(token)
    return web.Response(headers=NO_STORE)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "system": "auth"})


def create_app(
    db_path: Path | str,
    *,
    clients: Iterable[ClientSeed] = DEMO_CLIENTS,
    policy: Policy | None = None,
) -> web.Application:
    """The auth system; its store opens (seeding `clients` into an empty one) on startup."""
    app = web.Application(middlewares=[json_errors])
    app[POLICY] = policy or Policy()
    app[SECRETS] = SecretCheck()
    app[DECOY] = hash_secret("not a secret of any client")

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = AuthStore.open(db_path, clients)
        yield
        app[STORE].close()

    app.cleanup_ctx.append(store_ctx)
    app.router.add_get("/healthz", health)
    app.router.add_post("/oauth/token", oauth_endpoint(issue_token))
    app.router.add_post("/oauth/introspect", oauth_endpoint(introspect))
    app.router.add_post("/oauth/revoke", oauth_endpoint(revoke))
    return app
