"""Fallback: replay a request on another backend when the first one answered with a listed code.

`fallback: {backend, on: [404, 405, 501]}`: when the backend that served a request answers with
one of `on` (codes where it did nothing), the proxy reads and drops that answer, sends the same
request (same head, same body bytes) to `fallback.backend` and returns its answer instead.

The request body streams to the first backend as usual while a copy is kept (`KeptBody`), up to
`Settings.fallback_body_cap` bytes. A request is replayable when its whole body was read and kept
by the time the first answer's head arrived, or when its declared Content-Length is within the
cap: then the rest of the body is awaited (clients often send the head and the body in separate
writes, and a backend may answer a 404 before reading the body). A larger body, or a chunked one
still arriving, is not replayable, and the first answer is returned. Only real replays are
counted (`strangler_fallbacks_total`); the debt registry (`proxy.observe.debt`) lists every
shape that hit a fallback code, with how many could not be replayed.

A request a tester forced to a backend (`proxy.migration.canary`) is never replayed: the tester
sees the answer of the backend they chose.

This module owns the replay step of the request path, `Fallbacks`: `plan` before the request is
sent, `take_over` once the first answer's code asks for the fallback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from proxy.errors import ProxyError, RequestBodyTimeout
from proxy.http.pool import Exchange
from proxy.http.streams import BodyStream
from proxy.observe.debt import DebtRegistry
from proxy.observe.metrics import Metrics
from proxy.routing.model import Backend, Route, RouteTable

DISCARD_LIMIT = 64 * 1024  # a first answer's body is read to reuse the connection up to this


class _Unpaced:
    """The producer side of a body already in memory: nothing to pause."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


UNPACED = _Unpaced()


class KeptBody(BodyStream):
    """A request body read from `source` (by the first upload) while a copy is kept up to `cap`."""

    __slots__ = ("_source", "_cap", "_kept", "_kept_size", "expected", "complete", "overflow")

    def __init__(self, source: BodyStream, cap: int, expected: int | None = None) -> None:
        super().__init__(UNPACED)
        self._source = source
        self._cap = cap
        self.expected = expected  # the declared Content-Length, if any
        self._kept: list[bytes] = []
        self._kept_size = 0
        self.complete = False
        self.overflow = False

    @property
    def at_eof(self) -> bool:
        return self.complete

    async def read(self) -> bytes:
        chunk = await self._source.read()
        if not chunk:
            self.complete = True
        elif not self.overflow:
            self._kept_size += len(chunk)
            if self._kept_size > self._cap:
                self.overflow = True
                self._kept = []
            else:
                self._kept.append(chunk)
        return chunk

    def read_buffered(self) -> bytes:
        raise NotImplementedError("a kept body is read with read()")

    @property
    def replayable(self) -> bool:
        return self.complete and not self.overflow

    @property
    def completable(self) -> bool:
        """Not complete yet, but declared small enough to be kept whole once it has arrived."""
        return not self.complete and self.expected is not None and self.expected <= self._cap

    async def read_rest(self) -> None:
        """Read (and keep) what is left of the body. Only once nothing else reads the source."""
        while await self.read():
            pass

    @property
    def data(self) -> bytes:
        """The kept bytes (all of the body when `replayable`)."""
        return b"".join(self._kept)

    def again(self) -> BodyStream:
        """The kept bytes as a new, complete body."""
        return stream_of(*self._kept)


def stream_of(*chunks: bytes) -> BodyStream:
    """A complete body of bytes already in memory."""
    body = BodyStream(UNPACED)
    for chunk in chunks:
        body.feed(chunk)
    body.feed_eof()
    return body


@dataclass
class Replay:
    """A request that may be replayed on `backend` if the first answer's code is in `on`."""

    backend: Backend
    on: frozenset[int]
    body: KeptBody | None

    def wanted(self, status: int) -> bool:
        return status in self.on

    @property
    def replayable(self) -> bool:
        return self.body is None or self.body.replayable

    @property
    def completable(self) -> bool:
        return self.body is not None and self.body.completable

    def body_again(self) -> BodyStream | None:
        return None if self.body is None else self.body.again()


def plan_replay(
    route: Route | None,
    table: RouteTable,
    serving: Backend,
    body: BodyStream | None,
    cap: int,
    expected: int | None = None,
) -> Replay | None:
    """The replay to prepare for a request to `serving`, or None when no fallback applies.
    `expected` is the body's declared Content-Length (None when chunked)."""
    if route is None or route.fallback is None or route.fallback.backend == serving.name:
        return None
    fallback = route.fallback
    kept = None if body is None else KeptBody(body, cap, expected)
    return Replay(table.backends[fallback.backend], fallback.on, kept)


async def complete_body(replay: Replay, first: Exchange) -> None:
    """Drop the first answer and read the rest of a `completable` body into the kept copy.

    The first upload reads the body until its connection is released or closed, so it is
    awaited before this reads on; a client that stops sending gets a 408.
    """
    upload = first.upload
    await discard(first)
    if upload is not None:
        await asyncio.wait([upload])
    assert replay.body is not None
    try:
        async with asyncio.timeout(replay.backend.read_timeout):
            await replay.body.read_rest()
    except TimeoutError:
        raise RequestBodyTimeout() from None


async def discard(exchange: Exchange) -> None:
    """Drop a response: read a small body to the end (the connection goes back to the pool);
    close the connection when the body is large or fails."""
    body = exchange.response.body
    size = 0
    try:
        while chunk := await body.read():
            size += len(chunk)
            if size > DISCARD_LIMIT:
                exchange.abort()
                return
    except ProxyError:
        exchange.abort()
        return
    except BaseException:
        exchange.abort()
        raise
    exchange.release()


class Fallbacks:
    """The replay step: what a request keeps for a replay, and the replay itself, recorded in the
    debt registry and counted in `strangler_fallbacks_total`."""

    def __init__(self, cap: int, debt: DebtRegistry, metrics: Metrics) -> None:
        self._cap = cap
        self._debt = debt
        self._metrics = metrics

    def plan(
        self,
        route: Route | None,
        table: RouteTable,
        serving: Backend,
        body: BodyStream | None,
        expected: int | None,
    ) -> Replay | None:
        """`plan_replay` with the process's body cap."""
        return plan_replay(route, table, serving, body, self._cap, expected)

    async def take_over(
        self, replay: Replay, first: Exchange, serving: Backend, shape: tuple[str, str, str]
    ) -> bool:
        """Whether the fallback backend takes the request over from `serving`, whose answer
        `first` asked for it: True when the request can be replayed (`first` is dropped; send
        `replay.body_again()` to `replay.backend`), False when `first` stands. Recorded in the
        debt registry either way. `shape` is (resource, method, path).
        """
        code, to = first.response.status, replay.backend.name
        completing = not replay.replayable and replay.completable
        if completing:
            await complete_body(replay, first)  # drops the first answer
        replayable = replay.replayable
        resource, method, path = shape
        self._debt.record(
            resource, method, path, code, f"{serving.name} -> {to}", replayed=replayable
        )
        if not replayable:
            return False
        if not completing:
            await discard(first)
        self._metrics.fallback(resource, serving.name, to, code)
        return True
