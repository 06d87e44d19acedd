"""Talking to the source systems: one pooled requests.Session, one place for their failures.

A dry run's calls (``Sources.dry_run()``) carry dry-run headers signed over each call: its
method, its path and query as sent, and its body bytes as sent (serialised here, not by
requests, so the signed bytes are the sent bytes).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from proxy.dryrun import sign

Record = dict[str, Any]


class SourceUnavailable(Exception):
    """A source system is down, too slow, or answered something that is not its API."""


class Sources:
    """The source systems by name (``"reservations"`` -> base URL), reached over one session."""

    def __init__(
        self,
        urls: Mapping[str, str],
        timeout: float,
        pool_size: int = 10,
        shadow_secret: str | None = None,
    ) -> None:
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self.timeout = timeout
        self.shadow_secret = shadow_secret
        self.signs = False
        self.session = requests.Session()
        # The sources' URLs are configured, never taken from the environment: without this,
        # requests reads the proxy variables and ~/.netrc on every call (a millisecond each).
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=len(self.urls) or 1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def dry_run(self) -> Sources:
        """These sources, on the same session, for one dry run: every call is signed."""
        assert self.shadow_secret, "a dry run is only verified when there is a secret"
        signing = copy.copy(self)
        signing.signs = True
        return signing

    def headers(self, method: str, target: str, data: bytes | None) -> dict[str, str]:
        headers = {} if data is None else {"Content-Type": "application/json"}
        if self.signs and self.shadow_secret:
            headers.update(sign(self.shadow_secret, method, target, data or b"", time.time()))
        return headers

    def call(
        self,
        method: str,
        system: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        expect: Iterable[int] = (200,),
    ) -> Any:
        """The decoded JSON answer, or None when the source says 404."""
        target = f"/{path}?{urlencode(params)}" if params else f"/{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = self.headers(method, target, data)
        try:
            response = self.session.request(
                method, self.urls[system] + target, data=data, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(f"{system}: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code not in expect:
            raise SourceUnavailable(f"{system}: answered {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise SourceUnavailable(f"{system}: answered something that is not JSON") from exc

    def get(self, system: str, collection: str, object_id: int) -> Record | None:
        return self.expect_record(self.call("GET", system, f"{collection}/{object_id}"), system)

    def query(
        self, system: str, collection: str, params: Mapping[str, Any]
    ) -> tuple[int, list[Record]]:
        """``(count, items)`` of one page of a collection."""
        answer = self.call("GET", system, collection, params=params)
        if answer is None:
            raise SourceUnavailable(f"{system}: has no collection {collection}")
        try:
            count, items = answer["count"], answer["items"]
        except (KeyError, TypeError) as exc:
            raise SourceUnavailable(f"{system}: answered a list without count/items") from exc
        if not isinstance(count, int) or not isinstance(items, list):
            raise SourceUnavailable(f"{system}: answered a malformed list")
        if not all(isinstance(item, dict) and isinstance(item.get("id"), int) for item in items):
            raise SourceUnavailable(f"{system}: answered a list of something else than records")
        return count, items

    def by_ids(self, system: str, collection: str, ids: list[int]) -> dict[int, Record]:
        """The records of `ids` that `collection` holds, by id, in one request."""
        if not ids:
            return {}
        params = {"ids": ",".join(str(i) for i in ids), "limit": len(ids)}
        _, items = self.query(system, collection, params)
        return {item["id"]: item for item in items}

    def write(
        self, method: str, system: str, collection: str, body: Record, object_id: int | None
    ) -> Record | None:
        path = collection if object_id is None else f"{collection}/{object_id}"
        expect = (201,) if method == "POST" else (200,)
        return self.expect_record(self.call(method, system, path, body=body, expect=expect), system)

    @staticmethod
    def expect_record(answer: Any, system: str) -> Record | None:
        if answer is None:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise SourceUnavailable(f"{system}: answered something that is not a record")
        return answer
