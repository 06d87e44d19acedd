"""Bearer tokens (RFC 6750): the `Authorization` header read, the token introspected at the auth
system (RFC 7662, `POST $AUTH_URL/oauth/introspect`, the gateway authenticating with its own
client credential), the answer kept a short while.

Cache: an active answer is reused for `TOKEN_CACHE_SECONDS` (30 s by default) and never past
the token's own `exp`, so an expired token is refused on time; the price is that a revoked
token keeps working for up to that long in a process that has already seen it. Without it,
every request would wait on a second HTTP call. An inactive answer is kept `NEGATIVE_SECONDS`
(5 s) at most, enough to absorb a client retrying a dead token, too short to matter if the
auth system ever said "inactive" by mistake. One cache per process, of `CACHE_SIZE` tokens
(by SHA-256, never in clear): when full, expired entries go first, then the oldest.

`introspection` is the Django middleware that builds the process's one `Introspector` at start-up
and hands it to each request (`introspector_of`), for DRF's authentication and for handler404.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from requests.adapters import HTTPAdapter

from drf_app.backends import SourceUnavailable

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
NEGATIVE_SECONDS = 5.0
CACHE_SIZE = 10_000
# A WSGI environ key of our own (PEP 3333), as drf_app.dryrun's.
INTROSPECTOR = "strangler.introspector"

Handler = Callable[[HttpRequest], HttpResponseBase]


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case); None when
    there is no header, an empty one or another scheme (not a token, so not ours to judge);
    ValueError when it says Bearer but is malformed.

    >>> bearer_token("Bearer mF_9.B5f-4.1JqM")
    'mF_9.B5f-4.1JqM'
    >>> bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l") is None
    True
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.lstrip(" ")
    if not B64TOKEN.fullmatch(token):
        raise ValueError("malformed Bearer credentials")
    return token


@dataclass(frozen=True)
class Introspection:
    """The auth system's answer about a token: inactive, or whose it is, its scopes, its exp."""

    active: bool
    client_id: str = ""
    scopes: frozenset[str] = frozenset()
    exp: int = 0


def parse_introspection(answer: Any) -> Introspection:
    """An RFC 7662 answer; ValueError when it is not one.

    >>> parse_introspection({"active": True, "scope": "read", "client_id": "c", "exp": 9})
    Introspection(active=True, client_id='c', scopes=frozenset({'read'}), exp=9)
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
        raise ValueError("not an introspection answer")
    if not answer["active"]:
        return Introspection(False)
    scope, client_id, exp = answer.get("scope"), answer.get("client_id"), answer.get("exp")
    if not (isinstance(scope, str) and isinstance(client_id, str) and type(exp) is int):
        raise ValueError("an active token without scope, client_id or exp")
    return Introspection(True, client_id, frozenset(scope.split()), exp)


class TokenCache:
    """Introspection answers by token digest, each until its own deadline (see the module)."""

    def __init__(self, seconds: float, size: int = CACHE_SIZE) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: dict[str, tuple[float, Introspection]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> Introspection | None:
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None or entry[0] <= now else entry[1]

    def put(self, key: str, answer: Introspection, now: float) -> None:
        limit = answer.exp - now if answer.active else NEGATIVE_SECONDS
        seconds = min(self.seconds, limit)
        if seconds <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self.size:
                self._evict(now)
            self._entries[key] = (now + seconds, answer)

    def _evict(self, now: float) -> None:
        for key in [key for key, (deadline, _) in self._entries.items() if deadline <= now]:
            del self._entries[key]
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]


class Introspector:
    """The auth system's introspection endpoint, through one pooled session and a `TokenCache`.

    Every failure (refused, timed out, not 200, not an RFC 7662 answer, our own credential
    refused) is `SourceUnavailable`, as for the other source systems: 502."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        timeout: float,
        cache: TokenCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = base_url.rstrip("/") + "/oauth/introspect"
        # RFC 6749 §2.3.1: each form-urlencoded before it goes into Basic.
        self.credentials = (quote_plus(client_id), quote_plus(client_secret))
        self.timeout = timeout
        self.cache = cache
        self.clock = clock
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=4))

    @classmethod
    def from_settings(cls, settings: Any) -> Introspector:
        return cls(
            settings.AUTH_URL,
            settings.AUTH_CLIENT_ID,
            settings.AUTH_CLIENT_SECRET,
            float(settings.SOURCE_TIMEOUT),
            TokenCache(float(settings.TOKEN_CACHE_SECONDS)),
        )

    def introspect(self, token: str) -> Introspection:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        answer = self.cache.get(key, now)
        if answer is None:
            answer = self.ask(token)
            self.cache.put(key, answer, now)
        return answer

    def ask(self, token: str) -> Introspection:
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            response = self.session.post(
                self.url, data=form, auth=self.credentials, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise SourceUnavailable() from exc
        if response.status_code != 200:
            raise SourceUnavailable()
        try:
            return parse_introspection(response.json())
        except ValueError as exc:
            raise SourceUnavailable() from exc

    def close(self) -> None:
        self.session.close()


def introspector_of(meta: Mapping[str, Any]) -> Introspector:
    """The process's introspector, which the `introspection` middleware put in the environ."""
    introspector: Introspector = meta[INTROSPECTOR]
    return introspector


def introspection(get_response: Handler) -> Handler:
    introspector = Introspector.from_settings(settings)

    def middleware(request: HttpRequest) -> HttpResponseBase:
        request.META[INTROSPECTOR] = introspector
        return get_response(request)

    return middleware
