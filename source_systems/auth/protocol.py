"""The OAuth 2 side of a request, parsed without I/O: form fields, client credentials, scopes.

Every refusal is an `OAuthError` carrying the RFC 6749 §5.2 error code and the status to answer.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import unquote_plus

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class OAuthError(Exception):
    """A refused request: `error` is the RFC 6749 §5.2 code (`invalid_client` answers 401)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = 401 if error == "invalid_client" else status


class Credentials(NamedTuple):
    client_id: str
    secret: str


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Form fields by name; a repeated one is an error (RFC 6749 §3.2).

    >>> single_values([("grant_type", "client_credentials"), ("scope", "read")])
    {'grant_type': 'client_credentials', 'scope': 'read'}
    """
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise OAuthError("invalid_request", f"{name} is repeated")
        fields[name] = value
    return fields


def basic_credentials(header: str) -> Credentials:
    """The client id and secret of an `Authorization: Basic` header, each form-urldecoded as
    RFC 6749 §2.3.1 asks.

    >>> basic_credentials("Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=")
    Credentials(client_id='demo-client', secret='demo-secret')
    """
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "client authentication must use HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "malformed Basic credentials") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise OAuthError("invalid_client", "malformed Basic credentials")
    return Credentials(unquote_plus(client_id), unquote_plus(secret))


def client_credentials(authorization: str | None, form: Mapping[str, str]) -> Credentials:
    """The credentials a client authenticates with: HTTP Basic or the `client_id` and
    `client_secret` form fields, never both (RFC 6749 §2.3)."""
    if authorization is not None:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "more than one client authentication method")
        credentials = basic_credentials(authorization)
        if form.get("client_id", credentials.client_id) != credentials.client_id:
            raise OAuthError("invalid_request", "client_id does not match the Basic credentials")
        return credentials
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id or secret is None:
        raise OAuthError("invalid_client", "client authentication is required")
    return Credentials(client_id, secret)


def granted_scopes(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes a token gets: all the client's when none are asked for, else the ones asked
    for, which must be among the client's (in the client's order).

    >>> granted_scopes("write read", ("read", "write"))
    ('read', 'write')
    >>> granted_scopes(None, ("read",))
    ('read',)
    """
    if requested is None:
        return allowed
    asked = requested.split(" ")
    if not all(SCOPE_TOKEN.fullmatch(scope) for scope in asked):
        raise OAuthError("invalid_scope", "scope must be space-separated scope tokens")
    unknown = sorted(set(asked) - set(allowed))
    if unknown:
        raise OAuthError("invalid_scope", f"scope not allowed for this client: {' '.join(unknown)}")
    return tuple(scope for scope in allowed if scope in asked)
