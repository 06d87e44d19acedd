"""Kept mismatches: what a shadow comparison that differed leaves for engineers to act on.

Each `Mismatch` keeps the request as the live backend got it (its end-to-end headers, secrets
replaced by `<redacted>`, and a write's body), the live answer's status, Content-Type and body,
the differences and their class (`proxy.migration.diff`): enough to read it in `/-/diffs` and to
replay it as a test (`strangler diffs R --export pytest`). Bodies are kept up to `RECORD_CAP`
bytes each; a larger one is recorded as absent (null) and cannot be replayed.

`Kept` holds the last `keep` mismatches per resource **and class**, so a flood of value or noise
differences never pushes a status difference out of the report.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proxy.clock import iso_time
from proxy.migration.diff import Difference

RECORD_CAP = 64 * 1024
REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-application-key", "cookie"})
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
