"""Who may call the API: a Bearer token (OAuth 2) or an ``X-Application-Key``.

``check_credentials`` runs before every request, known URL or not, right after the dry-run
check. An ``Authorization: Bearer ...`` header decides alone, whatever key comes with it;
any other ``Authorization`` (none, empty, ``Basic ...``) leaves it to the key, as before.
A token is asked about at the auth system (``POST $AUTH_URL/oauth/introspect``, with the
gateway's own client credential) and must hold ``read`` for GET, HEAD and OPTIONS and
``write`` for anything else. Refusals carry the RFC 6750 challenge::

    no token, no valid key  401  WWW-Authenticate: Bearer realm="api"
    malformed Bearer        400  WWW-Authenticate: Bearer realm="api", error="invalid_request"
    token not active        401  WWW-Authenticate: Bearer realm="api", error="invalid_token"
    scope missing           403  WWW-Authenticate: Bearer realm="api", error="insufficient_scope",
                                 scope="write"
    auth system failing     502  (SourceUnavailable, like any source system)

Answers are remembered per process (``TokenCache``): an active one for ``TOKEN_CACHE_SECONDS``
(30 s) but never past the token's ``exp``, an inactive one for 5 s at most, 10000 tokens at
most (by SHA-256). So a revoked token may still pass for up to 30 s where it was just seen.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any
from urllib.parse import quote_plus

import requests
from flask import Response, current_app, request

from legacy_flask.errors import error_response
from legacy_flask.sources import SourceUnavailable

REALM = 'Bearer realm="api"'
MALFORMED = "Malformed Authorization header."
INVALID_TOKEN = "Invalid, expired or revoked access token."
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token
NEGATIVE_SECONDS = 5.0
CACHE_SIZE = 10000


def bearer_token(header: str | None) -> str | None:
    """The token of a Bearer ``Authorization`` header, None for no header or another scheme,
    ValueError for a malformed Bearer one.

    >>> bearer_token("bearer abc.DEF")
    'abc.DEF'
    """
    if header is None:
        return None
    parts = header.strip().split(" ", 1)
    if parts[0].lower() != "bearer":
        return None
    token = parts[1].lstrip(" ") if len(parts) == 2 else ""
    if not TOKEN_CHARACTERS.fullmatch(token):
        raise ValueError("malformed Bearer credentials")
    return token


class TokenCache:
    """Introspection answers by token digest, until their deadline."""

    def __init__(self, seconds: float, size: int = CACHE_SIZE) -> None:
        self.seconds = seconds
        self.size = size
        self.entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def get(self, key: str, now: float) -> dict[str, Any] | None:
        with self.lock:
            entry = self.entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, key: str, answer: dict[str, Any], now: float) -> None:
        if answer["active"]:
            seconds = min(self.seconds, answer["exp"] - now)
        else:
            seconds = min(self.seconds, NEGATIVE_SECONDS)
        if seconds <= 0:
            return
        with self.lock:
            self.entries.pop(key, None)
            if len(self.entries) >= self.size:
                for old in [k for k, (deadline, _) in self.entries.items() if deadline <= now]:
                    del self.entries[old]
            while len(self.entries) >= self.size:
                del self.entries[next(iter(self.entries))]
            self.entries[key] = (now + seconds, answer)


class Introspector:
    """The auth system's introspection endpoint, with a ``TokenCache`` in front."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        timeout: float,
        cache_seconds: float,
    ) -> None:
        self.url = base_url.rstrip("/") + "/oauth/introspect"
        self.credentials = (quote_plus(client_id), quote_plus(client_secret))
        self.timeout = timeout
        self.cache = TokenCache(cache_seconds)
        self.session = requests.Session()
        self.session.trust_env = False  # as the sources' session (legacy_flask.sources)

    def close(self) -> None:
        self.session.close()

    def introspect(self, token: str) -> dict[str, Any]:
        """``{"active": False}``, or ``{"active": True, "scope": "...", "exp": N, ...}``."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        answer = self.cache.get(key, now)
        if answer is None:
            answer = self.ask(token)
            self.cache.put(key, answer, now)
        return answer

    def ask(self, token: str) -> dict[str, Any]:
        data = {"token": token, "token_type_hint": "access_token"}
        try:
            response = self.session.post(
                self.url, data=data, auth=self.credentials, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(f"auth: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise SourceUnavailable(f"auth: introspection answered {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise SourceUnavailable("auth: answered something that is not JSON") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise SourceUnavailable("auth: answered something that is not an introspection")
        if answer["active"] and not (
            isinstance(answer.get("scope"), str) and type(answer.get("exp")) is int
        ):
            raise SourceUnavailable("auth: an active token without scope or exp")
        return answer


def challenged(response: Response, challenge: str) -> Response:
    response.headers["WWW-Authenticate"] = challenge
    return response


def check_credentials() -> Response | None:
    """before_request: the Bearer token when there is one, else the key (see the module)."""
    try:
        token = bearer_token(request.headers.get("Authorization"))
    except ValueError:
        return challenged(error_response(400, MALFORMED), REALM + ', error="invalid_request"')
    if token is None:
        if request.headers.get("X-Application-Key") not in current_app.config["API_KEYS"]:
            return challenged(error_response(401), REALM)
        return None
    answer = current_app.extensions["legacy_flask.auth"].introspect(token)
    if not answer["active"]:
        return challenged(error_response(401, INVALID_TOKEN), REALM + ', error="invalid_token"')
    needed = "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"
    if needed not in answer["scope"].split():
        message = f"This request needs the {needed} scope."
        challenge = f'{REALM}, error="insufficient_scope", scope="{needed}"'
        return challenged(error_response(403, message), challenge)
    return None
