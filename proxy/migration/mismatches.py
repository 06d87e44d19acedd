"""Kept mismatches: what a shadow comparison that differed leaves for engineers to act on.

Each `Mismatch` keeps the request as the live backend got it (its target and end-to-end headers,
secrets replaced by `<redacted>`: credential headers and query parameters; and a write's body),
the live answer's status, Content-Type and body, the differences and their class
(`proxy.migration.diff`): enough to read it in `/-/diffs` and to replay it as a test
(`strangler diffs R --export pytest`, which takes the redacted values from the environment).
Bodies are kept up to `RECORD_CAP` bytes each; a larger one is recorded as absent (null) and
cannot be replayed.

`Kept` holds the last `keep` mismatches per resource **and class**, so a flood of value or noise
differences never pushes a status difference out of the report.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.clock import iso_time
from proxy.migration.diff import Difference

RECORD_CAP = 64 * 1024
REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-application-key", "cookie"})
# Query parameters that carry credentials: RFC 6750's bearer token in the URI, API keys.
SECRET_PARAMETERS = frozenset({"access_token", "api_key", "apikey", "client_secret", "password"})
# Where a replay of a recorded target (`strangler diffs --export pytest`) finds a redacted value.
PARAMETER_PREFIX = "STRANGLER_EXPORT_QUERY_"
# Not part of what a replay must send: framing, routing and tracing headers, the proxy's own.
# Host is kept: the gateways build links (`href`) from it.
UNRECORDED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "forwarded",
        "x-request-id",
    }
)
UNRECORDED_PREFIXES = ("x-forwarded-", "x-strangler-")


def recorded_headers(head: bytes) -> tuple[tuple[str, str], ...]:
    r"""The end-to-end headers of a request head worth replaying, secrets redacted.

    >>> recorded_headers(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: 7\r\nCookie: s=1\r\n\r\n")
    (('Host', 'h'), ('Cookie', '<redacted>'))
    """
    found = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        text = name.decode("latin-1")
        lowered = text.lower()
        if lowered in UNRECORDED or lowered.startswith(UNRECORDED_PREFIXES):
            continue
        shown = REDACTED if lowered in SECRET_HEADERS else value.strip().decode("latin-1")
        found.append((text, shown))
    return tuple(found)


def recorded_target(target: str) -> str:
    """The request target with the values of secret query parameters redacted (names compared
    decoded and in lower case; everything else byte for byte).

    >>> recorded_target("/bookings/1?expand=all&Access_Token=abc%3D&x")
    '/bookings/1?expand=all&Access_Token=<redacted>&x'
    """
    path, question, query = target.partition("?")
    if not question:
        return target
    pairs = query.split("&")
    for index, pair in enumerate(pairs):
        name, equals, _ = pair.partition("=")
        if equals and urllib.parse.unquote_plus(name).lower() in SECRET_PARAMETERS:
            pairs[index] = f"{name}={REDACTED}"
    return f"{path}?{'&'.join(pairs)}"


def _query_pairs(target: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The path, and each query pair as (raw name, "=" or "", raw value)."""
    path, _, query = target.partition("?")
    return path, [pair.partition("=") for pair in query.split("&")]


def parameter_variable(name: str) -> str:
    """`access_token` -> `STRANGLER_EXPORT_QUERY_ACCESS_TOKEN`."""
    return PARAMETER_PREFIX + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def redacted_parameters(target: str) -> list[str]:
    """The (decoded) names of the query parameters `recorded_target` redacted, in order."""
    _, pairs = _query_pairs(target)
    return [urllib.parse.unquote_plus(name) for name, _, value in pairs if value == REDACTED]


def unredacted(target: str, environ: Mapping[str, str]) -> str:
    """A recorded target as a replay sends it: each query value recorded as REDACTED taken from
    `environ[parameter_variable(name)]` (percent-encoded); AssertionError naming the variable
    when it is unset.

    >>> unredacted("/b?access_token=<redacted>&x=1", {"STRANGLER_EXPORT_QUERY_ACCESS_TOKEN": "a b"})
    '/b?access_token=a%20b&x=1'
    """
    if "?" not in target or REDACTED not in target:
        return target
    path, pairs = _query_pairs(target)
    sent = []
    for name, equals, value in pairs:
        if value == REDACTED:
            variable = parameter_variable(urllib.parse.unquote_plus(name))
            if not environ.get(variable):
                raise AssertionError(
                    f"{variable} is not set: the value of a query parameter recorded as {REDACTED}"
                )
            value = urllib.parse.quote(environ[variable], safe="")
        sent.append(f"{name}{equals}{value}")
    return f"{path}?{'&'.join(sent)}"


def body_json(body: bytes | None, key: str = "body") -> dict[str, Any]:
    """`{"body": text}` for UTF-8, `{"body_base64": ...}` for other bytes, `{"body": None}` for
    a body not kept (over the cap)."""
    if body is None or len(body) > RECORD_CAP:
        return {key: None}
    try:
        return {key: body.decode()}
    except UnicodeDecodeError:
        return {f"{key}_base64": base64.b64encode(body).decode("ascii")}


@dataclass(frozen=True)
class Mismatch:
    """One compared request whose shadow answer differed (class `noise` included)."""

    time: float
    resource: str
    method: str
    target: str
    request_id: str | None
    backend: str
    shadow_backend: str
    live_status: int
    shadow_status: int
    differences: tuple[Difference, ...]
    kind: str  # the class: the worst of the differences'
    dry_run: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = b""  # the request's; None when not kept
    live_content_type: str = ""
    live_body: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": iso_time(self.time),
            "resource": self.resource,
            "method": self.method,
            "path": self.target,
            "request_id": self.request_id,
            "backend": self.backend,
            "shadow_backend": self.shadow_backend,
            "live_status": self.live_status,
            "shadow_status": self.shadow_status,
            "class": self.kind,
            "dry_run": self.dry_run,
            "differences": [difference.to_json() for difference in self.differences],
            "request": {"headers": [list(pair) for pair in self.headers], **body_json(self.body)},
            "live": {"content_type": self.live_content_type, **body_json(self.live_body)},
        }


class Kept:
    """The last `keep` mismatches per resource and class."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._kept: dict[str, dict[str, deque[Mismatch]]] = {}

    def add(self, mismatch: Mismatch) -> None:
        classes = self._kept.setdefault(mismatch.resource, {})
        kept = classes.get(mismatch.kind)
        if kept is None:
            kept = classes[mismatch.kind] = deque(maxlen=self.keep)
        kept.append(mismatch)

    def of(self, resource: str) -> Iterator[Mismatch]:
        for kept in self._kept.get(resource, {}).values():
            yield from kept

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every resource's kept mismatches as JSON, newest first: what workers share."""
        return {
            resource: [
                mismatch.to_json()
                for mismatch in sorted(self.of(resource), key=lambda m: m.time, reverse=True)
            ]
            for resource in self._kept
        }
