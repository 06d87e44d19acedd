"""Backpressure between two connections: a body in flight (the producer's reads pause) and a
transport's write buffer (the writer waits)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class Readable(Protocol):
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class BodyStream:
    """Chunks fed by a protocol's `data_received`, read by one coroutine.

    Above HIGH_WATER buffered bytes the producer's transport stops reading until the reader has
    brought the buffer under LOW_WATER: memory stays bounded whatever the body's size.
    """

    __slots__ = ("_transport", "_chunks", "_size", "_eof", "_error", "_waiter", "paused", "total")

    def __init__(self, transport: Readable) -> None:
        self._transport = transport
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.total = 0

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self.total += len(data)
        if self._size > HIGH_WATER and not self.paused:
            self.paused = True
            self._transport.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        if not self._eof:
            self._error = exc
            self._wake()

    async def read(self) -> bytes:
        """The next chunk; b"" once the body is complete. Raises what `set_exception` was given."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._size -= len(data)
        if self.paused and self._size < LOW_WATER:
            self.paused = False
            self._transport.resume_reading()
        return data

    def read_buffered(self) -> bytes:
        """Everything buffered now, without waiting (b"" if nothing is)."""
        if not self._chunks:
            return b""
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self.paused:
            self.paused = False
            self._transport.resume_reading()
        return data

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class WriteFlow:
    """A protocol's side of its transport's write flow control.

    The protocol's `pause_writing`/`resume_writing` call `pause`/`resume`, its `connection_lost`
    calls `connection_lost`; a writer awaits `wait()` after writing, so that what it writes is
    bounded by the transport's high-water mark.
    """

    __slots__ = ("paused", "lost", "_waiter")

    def __init__(self) -> None:
        self.paused = False
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake()

    def connection_lost(self) -> None:
        self.lost = True
        self._wake()

    async def wait(self) -> None:
        """Until the transport takes writes again, or the connection is gone."""
        while self.paused and not self.lost:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
