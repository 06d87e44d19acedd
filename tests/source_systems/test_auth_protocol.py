"""The OAuth 2 request parsing of the auth system, without sockets."""

from __future__ import annotations

import base64

import pytest

from source_systems.auth.hashing import hash_secret, verify_secret
from source_systems.auth.protocol import (
    Credentials,
    OAuthError,
    basic_credentials,
    client_credentials,
    granted_scopes,
    single_values,
)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("demo-client:demo-secret"), Credentials("demo-client", "demo-secret")),
        (basic("a%3Ab:c+d%25"), Credentials("a:b", "c d%")),
        (basic("id:se:cret"), Credentials("id", "se:cret")),
        (basic("id:"), Credentials("id", "")),
        ("basic  " + base64.b64encode(b"x:y").decode(), Credentials("x", "y")),
    ],
)
def test_basic_credentials(header: str, expected: Credentials) -> None:
    assert basic_credentials(header) == expected


@pytest.mark.parametrize(
    ("header", "description"),
    [
        ("Bearer abc", "client authentication must use HTTP Basic"),
        ("Basic", "malformed Basic credentials"),
        ("Basic not-base64!", "malformed Basic credentials"),
        (basic("no-colon"), "malformed Basic credentials"),
        (basic(":secret"), "malformed Basic credentials"),
        ("Basic " + base64.b64encode(b"\xff:x").decode(), "malformed Basic credentials"),
    ],
)
def test_malformed_basic_credentials(header: str, description: str) -> None:
    with pytest.raises(OAuthError) as caught:
        basic_credentials(header)
    assert (caught.value.error, caught.value.status, caught.value.description) == (
        "invalid_client",
        401,
        description,
    )


def test_form_credentials_and_never_two_methods() -> None:
    form = {"client_id": "c", "client_secret": "s"}
    assert client_credentials(None, form) == Credentials("c", "s")
    assert client_credentials(basic("c:s"), {"client_id": "c"}) == Credentials("c", "s")
    with pytest.raises(OAuthError, match="more than one client authentication method"):
        client_credentials(basic("c:s"), form)
    with pytest.raises(OAuthError, match="client authentication is required"):
        client_credentials(None, {"client_id": "c"})


@pytest.mark.parametrize(
    ("requested", "allowed", "granted"),
    [
        (None, ("read", "write"), ("read", "write")),
        ("write", ("read", "write"), ("write",)),
        ("write read read", ("read", "write"), ("read", "write")),
    ],
)
def test_granted_scopes(
    requested: str | None, allowed: tuple[str, ...], granted: tuple[str, ...]
) -> None:
    assert granted_scopes(requested, allowed) == granted


@pytest.mark.parametrize("requested", ["", " read", "read ", "read\twrite", "admin", "réad"])
def test_invalid_scopes(requested: str) -> None:
    with pytest.raises(OAuthError) as caught:
        granted_scopes(requested, ("read", "write"))
    assert (caught.value.error, caught.value.status) == ("invalid_scope", 400)


def test_repeated_fields_are_refused() -> None:
    assert single_values([("a", "1"), ("b", "")]) == {"a": "1", "b": ""}
    with pytest.raises(OAuthError, match="a is repeated"):
        single_values([("a", "1"), ("a", "1")])


def test_a_stored_secret_verifies_only_its_secret_and_each_has_its_salt() -> None:
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second
    assert verify_secret("s3cret", first) and verify_secret("s3cret", second)
    assert not verify_secret("s3cret!", first)
    assert not verify_secret("s3cret", "md5$abc")
