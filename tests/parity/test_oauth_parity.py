"""OAuth 2 parity: both gateways take Bearer tokens from the auth system and refuse them alike.

Tokens come from the real auth system of the stack (`POST /oauth/token`); each answer is compared
byte for byte between legacy and DRF (status, every header but Date/Server/Connection, body),
against the exact bytes expected, and against openapi.yaml. The rules (drf_app/auth.py,
legacy_flask/auth.py): an `Authorization: Bearer` header decides alone, with or without a key;
any other `Authorization` leaves it to the key; `read` covers GET/HEAD/OPTIONS, `write` the rest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from stack.ports import free_port
from stack.services import AUTH_SYSTEM, source_system
from tests.support import World, make_world
from tests.support.answers import Answer
from tests.support.contract import assert_conforms, load_spec

HOST = {"Host": "api.example.test"}
KEY = {"X-Application-Key": "demo"}
WRITER = ("demo-client", "demo-secret")
READER = ("demo-reader", "demo-reader-secret")

REALM = 'Bearer realm="api"'
MISSING = (
    b'{"http_status_code": 401, "message": "Missing or invalid X-Application-Key.", "errors": []}'
)
INVALID_TOKEN = (
    b'{"http_status_code": 401, "message": "Invalid, expired or revoked access token.", '
    b'"errors": []}'
)
MALFORMED = b'{"http_status_code": 400, "message": "Malformed Authorization header.", "errors": []}'
NOT_FOUND = b'{"http_status_code": 404, "message": "Not found.", "errors": []}'
UNAVAILABLE = (
    b'{"http_status_code": 502, "message": "A source system is unavailable.", "errors": []}'
)


def needs(scope: str) -> bytes:
    return (
        b'{"http_status_code": 403, "message": "This request needs the %s scope.", "errors": []}'
        % scope.encode()
    )


def answer(base: str, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Answer:
    response = requests.request(
        method, base + path, headers={**HOST, **headers}, timeout=10, **kwargs
    )
    got = Answer.of(response)
    if method not in ("HEAD", "OPTIONS"):
        assert_conforms(load_spec(), method, path, got.status, json.loads(got.body))
    return got


def both(
    urls: tuple[str, str], method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> Answer:
    """The one answer both gateways give (asserted identical)."""
    legacy, drf = (answer(url, method, path, headers, **kwargs) for url in urls)
    assert drf == legacy
    return legacy


def issue(auth_url: str, client: tuple[str, str], **fields: str) -> str:
    response = requests.post(
        f"{auth_url}/oauth/token",
        data={"grant_type": "client_credentials", **fields},
        auth=client,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def revoke(auth_url: str, client: tuple[str, str], token: str) -> None:
    response = requests.post(f"{auth_url}/oauth/revoke", data={"token": token}, auth=client)
    assert response.status_code == 200


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def gateways(legacy_url: str, drf_url: str) -> tuple[str, str]:
    return legacy_url, drf_url


@pytest.fixture(scope="module")
def auth_url(world: World) -> str:
    return world.url(AUTH_SYSTEM)


@pytest.fixture(scope="module")
def writer(auth_url: str) -> str:
    return issue(auth_url, WRITER)


@pytest.fixture(scope="module")
def reader(auth_url: str) -> str:
    return issue(auth_url, READER)


# --- a good token ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/bookings/1", "/tours?page=2&max_per_page=3", "/nowhere"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_token_reads_as_a_key_does(
    gateways: tuple[str, str], reader: str, writer: str, method: str, path: str
) -> None:
    with_key = both(gateways, method, path, KEY)
    assert with_key.status in (200, 404)
    assert both(gateways, method, path, bearer(reader)) == with_key
    assert both(gateways, method, path, bearer(writer)) == with_key


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/bookings"), ("PATCH", "/bookings/1"), ("PUT", "/customers/1")]
)
def test_a_write_token_writes_as_a_key_does(
    gateways: tuple[str, str], writer: str, method: str, path: str
) -> None:
    """An empty body: past authentication, each write is answered as with a key (a POST or PUT
    is refused by validation, a PATCH changes nothing)."""
    with_key = both(gateways, method, path, KEY, json={})
    assert with_key.status == (200 if method == "PATCH" else 400)
    assert both(gateways, method, path, bearer(writer), json={}) == with_key


def test_the_bearer_scheme_is_case_insensitive(gateways: tuple[str, str], reader: str) -> None:
    with_key = both(gateways, "GET", "/bookings/2", KEY)
    header = {"Authorization": f"bearer   {reader}"}
    assert both(gateways, "GET", "/bookings/2", header) == with_key


# --- tokens that are not (or no longer) active ---------------------------------------------


def test_an_unknown_token_is_invalid(gateways: tuple[str, str]) -> None:
    expected = Answer.error(401, INVALID_TOKEN, f'{REALM}, error="invalid_token"')
    for path in ("/bookings/1", "/nowhere"):
        assert both(gateways, "GET", path, bearer("never-issued")) == expected


def test_a_revoked_token_is_invalid(gateways: tuple[str, str], auth_url: str) -> None:
    token = issue(auth_url, WRITER)
    revoke(auth_url, WRITER, token)
    expected = Answer.error(401, INVALID_TOKEN, f'{REALM}, error="invalid_token"')
    assert both(gateways, "GET", "/bookings/1", bearer(token)) == expected
    assert both(gateways, "POST", "/bookings", bearer(token), json={}) == expected


# --- scopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/bookings", "/bookings/1", "/nowhere"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "TRACE"])
def test_a_read_token_cannot_write(
    gateways: tuple[str, str], reader: str, method: str, path: str
) -> None:
    expected = Answer.error(
        403, needs("write"), f'{REALM}, error="insufficient_scope", scope="write"'
    )
    assert both(gateways, method, path, bearer(reader), json={}) == expected


def test_a_write_only_token_cannot_read(gateways: tuple[str, str], auth_url: str) -> None:
    token = issue(auth_url, WRITER, scope="write")
    expected = Answer.error(
        403, needs("read"), f'{REALM}, error="insufficient_scope", scope="read"'
    )
    for path in ("/bookings/1", "/nowhere"):
        assert both(gateways, "GET", path, bearer(token)) == expected


# --- the Authorization header -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/bookings/1", "/nowhere"])
@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer a b", "Bearer a,b", "Bearer é", "BEARER ", "Bearer =abc"],
)
@pytest.mark.parametrize("key", [{}, KEY], ids=["no-key", "key"])
def test_a_malformed_bearer_header_is_a_bad_request(
    gateways: tuple[str, str], authorization: str, key: dict[str, str], path: str
) -> None:
    expected = Answer.error(400, MALFORMED, f'{REALM}, error="invalid_request"')
    headers = {**key, "Authorization": authorization}
    assert both(gateways, "GET", path, headers) == expected


@pytest.mark.parametrize("authorization", ["Basic xyz", "", "Digest a=b", "Bearertoken"])
def test_another_scheme_or_an_empty_header_leaves_it_to_the_key(
    gateways: tuple[str, str], authorization: str
) -> None:
    headers = {"Authorization": authorization}
    assert both(gateways, "GET", "/bookings/1", headers) == Answer.error(401, MISSING, REALM)
    assert both(gateways, "GET", "/bookings/1", {**headers, **KEY}) == both(
        gateways, "GET", "/bookings/1", KEY
    )


@pytest.mark.parametrize("key", [{}, {"X-Application-Key": ""}, {"X-Application-Key": "wrong"}])
def test_without_a_token_a_missing_key_gets_the_bearer_challenge(
    gateways: tuple[str, str], key: dict[str, str]
) -> None:
    for path in ("/bookings/1", "/nowhere"):
        assert both(gateways, "GET", path, key) == Answer.error(401, MISSING, REALM)


# --- a key and a token -------------------------------------------------------------------------


def test_with_a_key_and_a_token_the_token_decides(gateways: tuple[str, str], reader: str) -> None:
    with_key = both(gateways, "GET", "/bookings/1", KEY)
    wrong_key = {"X-Application-Key": "wrong"}
    assert both(gateways, "GET", "/bookings/1", {**wrong_key, **bearer(reader)}) == with_key
    invalid = Answer.error(401, INVALID_TOKEN, f'{REALM}, error="invalid_token"')
    assert both(gateways, "GET", "/bookings/1", {**KEY, **bearer("never-issued")}) == invalid
    scope = Answer.error(403, needs("write"), f'{REALM}, error="insufficient_scope", scope="write"')
    assert both(gateways, "POST", "/bookings", {**KEY, **bearer(reader)}, json={}) == scope


# --- unknown paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nowhere", "/", "/bookings/0", "/bookings/1/x/y"])
def test_an_unknown_path_with_a_token(gateways: tuple[str, str], reader: str, path: str) -> None:
    assert both(gateways, "GET", path, bearer(reader)) == Answer.error(404, NOT_FOUND, None)
    invalid = Answer.error(401, INVALID_TOKEN, f'{REALM}, error="invalid_token"')
    assert both(gateways, "GET", path, bearer("never-issued")) == invalid


# --- expiry, the cache, and the auth system down: a world of their own ---------------------------

LIFETIME = 3


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str, str]]:
    """A world whose tokens live LIFETIME seconds, with one worker per gateway (one cache
    each, so what the cache does is deterministic) and the default 30 s cache."""
    with make_world(tmp_path_factory.mktemp("oauth"), gateway_workers=1) as world:
        world.stack.stop(AUTH_SYSTEM)
        service = source_system(world.config, AUTH_SYSTEM)
        world.stack.start(replace(service, env={"AUTH_TOKEN_LIFETIME": str(LIFETIME)}))
        yield world, world.start_legacy(), world.start_drf()


def expiry(auth_url: str, token: str) -> int:
    response = requests.post(
        f"{auth_url}/oauth/introspect",
        data={"token": token},
        auth=("gateway", "gateway-secret"),
        timeout=10,
    )
    return int(response.json()["exp"])


def wait_past(exp: int) -> None:
    time.sleep(max(0.0, exp - time.time() + 0.2))


def test_an_expired_token_is_refused_on_time_despite_the_cache(
    short_lived: tuple[World, str, str],
) -> None:
    world, *urls = short_lived
    gateways = (urls[0], urls[1])
    token = issue(world.url(AUTH_SYSTEM), WRITER)
    with_key = both(gateways, "GET", "/bookings/3", KEY)
    assert both(gateways, "GET", "/bookings/3", bearer(token)) == with_key
    wait_past(expiry(world.url(AUTH_SYSTEM), token))
    expected = Answer.error(401, INVALID_TOKEN, f'{REALM}, error="invalid_token"')
    assert both(gateways, "GET", "/bookings/3", bearer(token)) == expected


def test_a_token_revoked_after_use_passes_until_the_cache_lets_go(
    short_lived: tuple[World, str, str],
) -> None:
    """The documented price of the cache: a gateway that has just seen a token keeps taking
    it after its revocation, for TOKEN_CACHE_SECONDS at most and never past its exp."""
    world, *urls = short_lived
    gateways = (urls[0], urls[1])
    auth_url = world.url(AUTH_SYSTEM)
    token = issue(auth_url, WRITER)
    exp = expiry(auth_url, token)
    with_key = both(gateways, "GET", "/bookings/4", KEY)
    assert both(gateways, "GET", "/bookings/4", bearer(token)) == with_key
    revoke(auth_url, WRITER, token)
    assert both(gateways, "GET", "/bookings/4", bearer(token)) == with_key
    wait_past(exp)
    expected = Answer.error(401, INVALID_TOKEN, f'{REALM}, error="invalid_token"')
    assert both(gateways, "GET", "/bookings/4", bearer(token)) == expected


def test_with_the_auth_system_down_tokens_get_502_and_keys_still_work(
    short_lived: tuple[World, str, str],
) -> None:
    world, *urls = short_lived
    gateways = (urls[0], urls[1])
    service = world.stack.services[AUTH_SYSTEM]
    world.stack.stop(AUTH_SYSTEM)
    try:
        expected = Answer.error(502, UNAVAILABLE, None)
        for path in ("/bookings/1", "/nowhere"):
            assert both(gateways, "GET", path, bearer("not-seen-before")) == expected
        assert both(gateways, "GET", "/bookings/1", KEY).status == 200
    finally:
        world.stack.start(service)


# --- the environment's HTTP proxy -----------------------------------------------------------


def test_an_http_proxy_in_the_environment_is_not_used_for_the_sources_or_the_auth_system(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The source systems and the auth system are reached at their configured URLs, never
    through a proxy named in the gateways' environment (here: a port nothing listens on)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {name: nowhere for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")}
    env.update(NO_PROXY="", no_proxy="")
    with make_world(tmp_path_factory.mktemp("proxied"), gateway_workers=1) as world:
        gateways = (world.start_legacy(env), world.start_drf(env))
        token = issue(world.url(AUTH_SYSTEM), READER)
        with_key = both(gateways, "GET", "/bookings/1", KEY)
        assert with_key.status == 200
        assert both(gateways, "GET", "/bookings/1", bearer(token)) == with_key
