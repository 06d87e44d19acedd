"""Who may call the legacy gateway: the Bearer header parser, the introspection cache, and the
check itself (Flask's test client, introspecting at the stack's real auth system)."""

import pytest
import requests

from legacy_flask import create_app
from legacy_flask.auth import TokenCache, bearer_token
from stack.ports import free_port
from stack.services import AUTH_SYSTEM

KEY = {"X-Application-Key": "demo"}
REALM = 'Bearer realm="api"'
ACTIVE = {"active": True, "scope": "read", "client_id": "c", "exp": 200}


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Basic xyz", None),
        ("Bearer abc", "abc"),
        ("bearer   a+b/c~d==", "a+b/c~d=="),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer a,b", "Bearer =a"])
def test_a_malformed_bearer_header_is_a_value_error(header):
    with pytest.raises(ValueError):
        bearer_token(header)


def test_the_cache_keeps_active_answers_until_exp_and_inactive_ones_five_seconds():
    cache = TokenCache(30)
    cache.put("soon", ACTIVE, 190)
    cache.put("dead", {"active": False}, 100)
    assert cache.get("soon", 199.9) == ACTIVE
    assert cache.get("soon", 200) is None
    assert cache.get("dead", 104.9) == {"active": False}
    assert cache.get("dead", 105) is None


def test_a_full_cache_drops_the_oldest():
    cache = TokenCache(30, size=2)
    for key in ("a", "b", "c"):
        cache.put(key, ACTIVE, 100)
    assert [cache.get(key, 100) for key in ("a", "b", "c")] == [None, ACTIVE, ACTIVE]


def client_for(auth_url):
    app = create_app({"AUTH_URL": auth_url})
    return app, app.test_client()


def envelope(status, message):
    return {"http_status_code": status, "message": message, "errors": []}


@pytest.fixture
def offline():
    """The gateway with nothing listening where the auth system should be."""
    app, client = client_for(f"http://127.0.0.1:{free_port()}")
    yield client
    app.extensions["legacy_flask.sources"].close()
    app.extensions["legacy_flask.auth"].close()


@pytest.mark.parametrize("path", ["/bookings/1", "/nope"])
def test_without_the_auth_system_a_token_is_502_and_a_key_needs_no_auth_system(offline, path):
    response = offline.get(path, headers={"Authorization": "Bearer abc"})
    assert (response.status_code, response.get_json()) == (
        502,
        envelope(502, "A source system is unavailable."),
    )
    assert "WWW-Authenticate" not in response.headers
    assert offline.get("/nope", headers={**KEY, "Authorization": "Basic xyz"}).status_code == 404


def test_refusals_that_need_no_auth_system(offline):
    missing = offline.get("/nope", headers={"Authorization": "Basic xyz"})
    assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, REALM)
    assert missing.get_json() == envelope(401, "Missing or invalid X-Application-Key.")
    malformed = offline.get("/nope", headers={**KEY, "Authorization": "Bearer a b"})
    assert (malformed.status_code, malformed.headers["WWW-Authenticate"]) == (
        400,
        f'{REALM}, error="invalid_request"',
    )
    assert malformed.get_json() == envelope(400, "Malformed Authorization header.")


def test_a_read_token_reads_and_cannot_write(world):
    auth_url = world.url(AUTH_SYSTEM)
    token = requests.post(
        f"{auth_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("demo-reader", "demo-reader-secret"),
        timeout=10,
    ).json()["access_token"]
    app, client = client_for(auth_url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        assert client.get("/nope", headers=headers).status_code == 404
        refused = client.post("/nope", headers=headers, json={})
        assert (refused.status_code, refused.headers["WWW-Authenticate"]) == (
            403,
            f'{REALM}, error="insufficient_scope", scope="write"',
        )
        assert refused.get_json() == envelope(403, "This request needs the write scope.")
    finally:
        app.extensions["legacy_flask.sources"].close()
        app.extensions["legacy_flask.auth"].close()
