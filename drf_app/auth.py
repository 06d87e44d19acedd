"""Clients authenticate with an OAuth 2 Bearer token or an `X-Application-Key` (`API_KEYS`).

A request whose `Authorization` header says `Bearer` is judged by its token alone, key or no
key: a valid key never rescues a bad, expired or revoked token, nor widens its scopes.
Otherwise (no `Authorization`, an empty one, another scheme such as `Basic`) the key decides, as
it always did. The token is introspected at the auth system (`tokens`); `read` lets it make GET,
HEAD and OPTIONS requests, `write` the others; a key may do everything. Refusals carry an RFC
6750 §3 challenge (`challenge_of`), the same bytes as legacy's:

    no token, no valid key  401  WWW-Authenticate: Bearer realm="api"
    malformed Bearer        400  WWW-Authenticate: Bearer realm="api", error="invalid_request"
    token not active        401  WWW-Authenticate: Bearer realm="api", error="invalid_token"
    scope missing           403  WWW-Authenticate: Bearer realm="api", error="insufficient_scope",
                                 scope="write"
    auth system failing     502  (as any source system)

DRF views check all this through `BearerTokenAuthentication`, `ApplicationKeyAuthentication`
and `HasScope`. URLs that match no view never reach DRF: `errors.not_found` (Django's
handler404) calls `authorize` itself, so an unknown path is refused alike, at no cost on the
hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from drf_app.tokens import bearer_token, introspector_of

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while rest_framework.views is being defined.
    from rest_framework.views import APIView


REALM = 'Bearer realm="api"'
READ, WRITE = "read", "write"


class MalformedAuthorization(exceptions.APIException):
    status_code = 400
    default_detail = "Malformed Authorization header."
    challenge = f'{REALM}, error="invalid_request"'


class InvalidToken(exceptions.APIException):
    status_code = 401
    default_detail = "Invalid, expired or revoked access token."
    challenge = f'{REALM}, error="invalid_token"'


class InsufficientScope(exceptions.APIException):
    status_code = 403

    def __init__(self, scope: str) -> None:
        super().__init__(f"This request needs the {scope} scope.")
        self.challenge = f'{REALM}, error="insufficient_scope", scope="{scope}"'


@dataclass(frozen=True)
class ApplicationClient:
    """The authenticated party: an application, known by its key."""

    key: str
    is_authenticated: bool = True


@dataclass(frozen=True)
class TokenClient:
    """The authenticated party: an OAuth 2 client, known by its token's introspection."""

    client_id: str
    scopes: frozenset[str]
    is_authenticated: bool = True


def has_valid_key(meta: Mapping[str, Any]) -> bool:
    return meta.get("HTTP_X_APPLICATION_KEY") in settings.API_KEYS


def token_client(meta: Mapping[str, Any]) -> TokenClient | None:
    """The client of the request's Bearer token; None when it carries none."""
    try:
        token = bearer_token(meta.get("HTTP_AUTHORIZATION"))
    except ValueError as exc:
        raise MalformedAuthorization() from exc
    if token is None:
        return None
    answer = introspector_of(meta).introspect(token)
    if not answer.active:
        raise InvalidToken()
    return TokenClient(answer.client_id, answer.scopes)


def check_scope(client: ApplicationClient | TokenClient, method: str) -> None:
    """A token needs `read` for GET, HEAD and OPTIONS and `write` for any other method."""
    if isinstance(client, TokenClient):
        needed = READ if method in SAFE_METHODS else WRITE
        if needed not in client.scopes:
            raise InsufficientScope(needed)


def authorize(meta: Mapping[str, Any], method: str) -> None:
    """What DRF's authentication and `HasScope` do, for a request no DRF view handles."""
    client = token_client(meta)
    if client is not None:
        check_scope(client, method)
    elif not has_valid_key(meta):
        raise exceptions.NotAuthenticated()


def challenge_of(exc: exceptions.APIException) -> str | None:
    """The `WWW-Authenticate` value of a refusal, None for other errors."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return REALM
    challenge = getattr(exc, "challenge", None)
    return challenge if isinstance(challenge, str) else None


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[TokenClient, None] | None:
        client = token_client(request.META)
        return None if client is None else (client, None)

    def authenticate_header(self, request: Request) -> str:
        return REALM


class ApplicationKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApplicationClient, str] | None:
        if not has_valid_key(request.META):
            return None
        key = request.META["HTTP_X_APPLICATION_KEY"]
        return ApplicationClient(key), key


class HasScope(BasePermission):
    """An authenticated client (else DRF answers NotAuthenticated) whose scopes fit the method."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        client = request.user
        if not isinstance(client, ApplicationClient | TokenClient):
            return False
        check_scope(client, request.method or "")
        return True
