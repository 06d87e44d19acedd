"""Bearer tokens at the DRF gateway: the header parser, the introspection cache, and the
introspector against the stack's real auth system."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from drf_app.backends import SourceUnavailable
from drf_app.tokens import (
    Introspection,
    Introspector,
    TokenCache,
    bearer_token,
    parse_introspection,
)
from stack.ports import free_port
from stack.services import AUTH_SYSTEM
from tests.support import World

ACTIVE = Introspection(True, "demo-client", frozenset({"read", "write"}), 200)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Basic ZGVtbzpkZW1v", None),
        ("Bearertoken", None),
        ("Bearer abc", "abc"),
        ("bearer   mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"),
        ("BEARER a+b/c~d==", "a+b/c~d=="),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer =a"])
def test_a_malformed_bearer_header_is_a_value_error(header: str) -> None:
    with pytest.raises(ValueError, match="malformed Bearer credentials"):
        bearer_token(header)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"active": False}, Introspection(False)),
        (
            {"active": True, "scope": "read write", "client_id": "demo-client", "exp": 200},
            ACTIVE,
        ),
    ],
)
def test_parse_introspection(answer: Any, expected: Introspection) -> None:
    assert parse_introspection(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {},
        {"active": "true"},
        {"active": True, "scope": "read", "client_id": "c"},
        {"active": True, "scope": "read", "client_id": "c", "exp": True},
        {"active": True, "scope": ["read"], "client_id": "c", "exp": 1},
    ],
)
def test_what_is_not_an_introspection_answer_is_a_value_error(answer: Any) -> None:
    with pytest.raises(ValueError):
        parse_introspection(answer)


def test_an_active_answer_is_kept_the_cache_time_but_never_past_exp() -> None:
    cache = TokenCache(seconds=30)
    cache.put("soon", ACTIVE, now=190)
    cache.put("later", ACTIVE, now=100)
    assert cache.get("soon", 199.9) == ACTIVE
    assert cache.get("soon", 200) is None
    assert cache.get("later", 129.9) == ACTIVE
    assert cache.get("later", 130) is None


def test_an_inactive_answer_is_kept_five_seconds_at_most() -> None:
    cache = TokenCache(seconds=30)
    cache.put("dead", Introspection(False), now=100)
    assert cache.get("dead", 104.9) == Introspection(False)
    assert cache.get("dead", 105) is None
    short = TokenCache(seconds=2)
    short.put("dead", Introspection(False), now=100)
    assert short.get("dead", 102) is None


def test_an_expired_answer_or_a_zero_cache_time_keeps_nothing() -> None:
    cache = TokenCache(seconds=30)
    cache.put("expired", ACTIVE, now=200)
    assert cache.get("expired", 150) is None
    off = TokenCache(seconds=0)
    off.put("any", ACTIVE, now=100)
    off.put("dead", Introspection(False), now=100)
    assert (off.get("any", 100), off.get("dead", 100)) == (None, None)


def test_a_full_cache_drops_expired_entries_first_then_the_oldest() -> None:
    cache = TokenCache(seconds=30, size=3)
    cache.put("dead", Introspection(False), now=100)
    cache.put("a", ACTIVE, now=100)
    cache.put("b", ACTIVE, now=100)
    cache.put("c", ACTIVE, now=106)  # "dead" expired at 105: it goes, nothing else
    assert [cache.get(key, 106) for key in ("dead", "a", "b", "c")] == [
        None,
        ACTIVE,
        ACTIVE,
        ACTIVE,
    ]
    cache.put("d", ACTIVE, now=106)  # nothing expired: the oldest, "a", goes
    assert [cache.get(key, 106) for key in ("a", "b", "c", "d")] == [None, ACTIVE, ACTIVE, ACTIVE]


# --- against the stack's auth system ------------------------------------------------------------


def introspector(world: World, secret: str = "gateway-secret", url: str | None = None) -> Any:
    base = url or world.url(AUTH_SYSTEM)
    return Introspector(base, "gateway", secret, 5.0, TokenCache(30))


def issue(world: World, client: tuple[str, str] = ("demo-reader", "demo-reader-secret")) -> str:
    response = requests.post(
        f"{world.url(AUTH_SYSTEM)}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=client,
        timeout=10,
    )
    return str(response.json()["access_token"])


def test_a_token_is_introspected_once_then_served_from_the_cache(world: World) -> None:
    token = issue(world)
    checking = introspector(world)
    try:
        answer = checking.introspect(token)
        assert (answer.active, answer.client_id, answer.scopes) == (
            True,
            "demo-reader",
            frozenset({"read"}),
        )
        requests.post(
            f"{world.url(AUTH_SYSTEM)}/oauth/revoke",
            data={"token": token},
            auth=("demo-reader", "demo-reader-secret"),
            timeout=10,
        )
        assert checking.introspect(token) == answer
        fresh = introspector(world)
        assert fresh.introspect(token) == Introspection(False)
        fresh.close()
    finally:
        checking.close()


@pytest.mark.parametrize("broken", ["wrong-credential", "nothing-listening"])
def test_an_auth_system_that_cannot_answer_is_source_unavailable(world: World, broken: str) -> None:
    if broken == "wrong-credential":
        checking = introspector(world, secret="wrong")
    else:
        checking = introspector(world, url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(SourceUnavailable):
            checking.introspect("any-token")
    finally:
        checking.close()
