"""What a client sees of a gateway's answer, for the parity tests: the status, every header but
Date/Server/Connection (lower-cased, sorted), the body bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

IGNORED_HEADERS = frozenset({"date", "server", "connection"})


@dataclass(frozen=True)
class Answer:
    """What a client sees: status, every header but Date/Server/Connection, the body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def of(cls, response: requests.Response) -> Answer:
        headers = sorted(
            (name.lower(), value)
            for name, value in response.headers.items()
            if name.lower() not in IGNORED_HEADERS
        )
        return cls(response.status_code, tuple(headers), response.content)

    @classmethod
    def error(cls, status: int, body: bytes, challenge: str | None) -> Answer:
        """An error envelope as both gateways answer it when `Accept` chose its format (no
        `?format=`), with its `WWW-Authenticate` if any."""
        headers = [
            ("content-length", str(len(body))),
            ("content-type", "application/json"),
            ("vary", "Accept"),
        ]
        if challenge is not None:
            headers.append(("www-authenticate", challenge))
        return cls(status, tuple(headers), body)

    def header(self, name: str) -> str | None:
        return dict(self.headers).get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def with_id(self, resource: str, old: int, new: int) -> Answer:
        """This answer as it would read for object `new` instead of `old` (same resource),
        to compare the answers of writes that created different ids."""
        body = self.body.replace(b'{"id": %d, ' % old, b'{"id": %d, ' % new, 1)
        body = body.replace(
            b'/%s/%d"' % (resource.encode(), old), b'/%s/%d"' % (resource.encode(), new)
        )
        headers = tuple(
            (name, str(len(body)) if name == "content-length" else value)
            for name, value in self.headers
        )
        return Answer(self.status, headers, body)
