"""A small asyncio client of etcd's v3 JSON gateway (etcd 3.4), on aiohttp.

Every call is a POST of one JSON object to `/v3/...`; keys and values travel base64-encoded and
64-bit numbers as strings, both handled here, so callers pass and get `str`/`bytes`/`int`.
Fields etcd leaves at their zero value are absent from its answers (no `kvs`, no `succeeded`).

Several endpoints: a call goes to the endpoint that answered last; when it cannot connect, the
next is tried. A read (idempotent) also moves on after a timeout or a dropped connection; a write
does not (its outcome is unknown) and raises `StoreUncertain`, so the caller can check it.
Everything that goes wrong becomes a `StoreError` with a message naming the endpoints.

`watch` streams the events of a key; etcd sends nothing on an idle watch, so while the stream is
quiet a cheap range on the same endpoint checks every `timeout` seconds that etcd still answers:
a killed, stopped (SIGSTOP) or cut-off etcd ends the watch with `StoreError` within about
2 x `timeout`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

Json = dict[str, Any]


class StoreError(Exception):
    """The store is unreachable, timed out, or answered something unexpected."""


class StoreUncertain(StoreError):
    """A write was sent but no answer came: it may or may not have been applied."""


def encode(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def decode(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def prefix_end(prefix: str) -> str:
    """The `range_end` that selects every key starting with `prefix` (one past its last byte).

    >>> prefix_end("/strangler/audit/")
    '/strangler/audit0'
    """
    raw = prefix.encode("utf-8")
    return (raw[:-1] + bytes([raw[-1] + 1])).decode("utf-8")


def number(value: Any) -> int:
    """An int64 of etcd's JSON (a string, or absent for 0)."""
    return int(value) if value else 0


class Etcd:
    """One client: a session, the endpoints, the one that answered last."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint given")
        self.endpoints = tuple(endpoint.rstrip("/") for endpoint in endpoints)
        self.timeout = timeout
        self._current = 0
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    def _client(self, fresh: bool = False) -> aiohttp.ClientSession:
        """The pooled session; `fresh`: one that opens a connection per request (writes, so a
        dropped connection is never a stale pooled one, and "cannot connect" is certain)."""
        session = self._sessions.get(fresh)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=fresh),
                timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout),
            )
            self._sessions[fresh] = session
        return session

    def _order(self) -> list[int]:
        count = len(self.endpoints)
        return [(self._current + step) % count for step in range(count)]

    # -- unary calls ----------------------------------------------------------------------------

    async def call(self, path: str, body: Json, *, idempotent: bool) -> Json:
        """POST `body` to `path` on the first endpoint that answers; its JSON answer."""
        failures: list[str] = []
        for index in self._order():
            endpoint = self.endpoints[index]
            for retry in (False, True) if idempotent else (False,):
                try:
                    answer = await self.call_at(endpoint, path, body, fresh=not idempotent)
                except aiohttp.ClientConnectorError as exc:
                    failures.append(f"{endpoint}: cannot connect ({exc.os_error.strerror or exc})")
                    break
                except aiohttp.ServerDisconnectedError:
                    if retry or not idempotent:  # a pooled connection etcd had closed: once more
                        failures.append(f"{endpoint}: the connection was closed")
                        break
                    continue
                except (TimeoutError, aiohttp.ClientError) as exc:
                    failures.append(f"{endpoint}: {_describe(exc, self.timeout)}")
                    break
                self._current = index
                return answer
            if not idempotent and not failures[-1].startswith(f"{endpoint}: cannot connect"):
                raise StoreUncertain(f"etcd at {failures[-1]}")
        raise StoreError("etcd unreachable: " + "; ".join(failures))

    async def call_at(self, endpoint: str, path: str, body: Json, *, fresh: bool = False) -> Json:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        session = self._client(fresh)
        async with session.post(endpoint + path, json=body, timeout=timeout) as response:
            raw = await response.read()
        return _answer(endpoint, response.status, raw)

    async def range(
        self,
        key: str,
        *,
        prefix: bool = False,
        keys_only: bool = False,
        sort_by_create: bool = False,
    ) -> Json:
        return await self.call(
            "/v3/kv/range", range_request(key, prefix, keys_only, sort_by_create), idempotent=True
        )

    async def put(self, key: str, value: str | bytes, *, lease: int = 0) -> Json:
        return await self.call("/v3/kv/put", put_request(key, value, lease), idempotent=False)

    async def delete(self, key: str, *, prefix: bool = False) -> Json:
        body: Json = {"key": encode(key)}
        if prefix:
            body["range_end"] = encode(prefix_end(key))
        return await self.call("/v3/kv/deleterange", body, idempotent=False)

    async def txn(
        self, compare: list[Json], success: list[Json], failure: Sequence[Json] = ()
    ) -> Json:
        """One transaction; ops are `{"request_put": ...}`, `{"request_range": ...}`."""
        body = {"compare": compare, "success": success, "failure": list(failure)}
        read_only = all("request_range" in op for op in [*success, *failure])
        return await self.call("/v3/kv/txn", body, idempotent=read_only)

    async def lease_grant(self, ttl: int) -> int:
        answer = await self.call("/v3/lease/grant", {"TTL": str(ttl)}, idempotent=False)
        if answer.get("error"):
            raise StoreError(f"etcd refused a lease: {answer['error']}")
        return number(answer.get("ID"))

    async def lease_keepalive(self, lease: int) -> int:
        """The lease's remaining TTL after the refresh; 0 when it is gone (expired, revoked)."""
        answer = await self.call("/v3/lease/keepalive", {"ID": str(lease)}, idempotent=True)
        return number(answer.get("result", {}).get("TTL"))

    async def lease_revoke(self, lease: int) -> None:
        try:
            await self.call("/v3/lease/revoke", {"ID": str(lease)}, idempotent=True)
        except StoreError as exc:
            if "not found" not in str(exc):
                raise

    # -- the watch ------------------------------------------------------------------------------

    async def watch(self, key: str, start_revision: int) -> AsyncIterator[Json]:
        """Every watch response carrying events for `key` from `start_revision` on.

        Raises `StoreError` when the stream ends, etcd cancels the watch (revision compacted),
        or etcd stops answering. Never returns normally.
        """
        create = {
            "key": encode(key),
            "start_revision": str(start_revision),
            "progress_notify": True,
        }
        failures: list[str] = []
        for index in self._order():
            endpoint = self.endpoints[index]
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._client().post(
                        endpoint + "/v3/watch", json={"create_request": create}
                    )
            except (TimeoutError, aiohttp.ClientError) as exc:
                failures.append(f"{endpoint}: {_describe(exc, self.timeout)}")
                continue
            self._current = index
            async with response:
                async for result in self._results(endpoint, key, response):
                    yield result
        raise StoreError("etcd unreachable for the watch: " + "; ".join(failures))

    async def _results(
        self, endpoint: str, key: str, response: aiohttp.ClientResponse
    ) -> AsyncIterator[Json]:
        if response.status != 200:
            _answer(endpoint, response.status, await response.read())
        buffer = b""
        reading: asyncio.Future[bytes] | None = None
        try:
            while True:
                if reading is None:
                    reading = asyncio.ensure_future(response.content.readany())
                done, _ = await asyncio.wait({reading}, timeout=self.timeout)
                if not done:
                    await self._probe(endpoint, key)
                    continue
                chunk = _chunk(endpoint, reading)
                reading = None
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    result = _watch_result(endpoint, line)
                    if result.get("events"):
                        yield result
        finally:
            if reading is not None:
                reading.cancel()

    async def _probe(self, endpoint: str, key: str) -> None:
        body = range_request(key, False, True, False) | {"count_only": True}
        try:
            await self.call_at(endpoint, "/v3/kv/range", body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise StoreError(f"etcd at {endpoint}: {_describe(exc, self.timeout)}") from exc


def range_request(key: str, prefix: bool, keys_only: bool, sort_by_create: bool) -> Json:
    body: Json = {"key": encode(key)}
    if prefix:
        body["range_end"] = encode(prefix_end(key))
    if keys_only:
        body["keys_only"] = True
    if sort_by_create:
        body["sort_target"] = "CREATE"
        body["sort_order"] = "ASCEND"
    return body


def put_request(key: str, value: str | bytes, lease: int = 0) -> Json:
    body: Json = {"key": encode(key), "value": encode(value)}
    if lease:
        body["lease"] = str(lease)
    return body


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(exc) or type(exc).__name__


def _answer(endpoint: str, status: int, raw: bytes) -> Json:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise StoreError(f"etcd at {endpoint}: unexpected answer (HTTP {status})")
    if status != 200 or isinstance(answer.get("error"), str):
        message = answer.get("message") or answer.get("error") or f"HTTP {status}"
        raise StoreError(f"etcd at {endpoint}: {message}")
    return answer


def _chunk(endpoint: str, reading: asyncio.Future[bytes]) -> bytes:
    try:
        chunk = reading.result()
    except (aiohttp.ClientError, OSError) as exc:
        raise StoreError(f"etcd at {endpoint}: the watch broke ({exc})") from exc
    if not chunk:
        raise StoreError(f"etcd at {endpoint}: the watch connection closed")
    return chunk


def _watch_result(endpoint: str, line: bytes) -> Json:
    if not line.strip():
        return {}
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise StoreError(f"etcd at {endpoint}: unreadable watch message") from exc
    if not isinstance(message, dict) or "result" not in message:
        error = message.get("error") if isinstance(message, dict) else None
        raise StoreError(f"etcd at {endpoint}: the watch failed ({error or 'no result'})")
    result: Json = message["result"]
    if result.get("canceled"):
        reason = result.get("cancel_reason") or (
            f"revision compacted up to {result.get('compact_revision')}"
        )
        raise StoreError(f"etcd at {endpoint}: the watch was cancelled ({reason})")
    return result
