"""Backpressure between two connections: a body in flight (the producer's reads pause) and a
transport's write buffer (the writer waits); and how the hot path makes the futures it waits on."""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Read chunks' places a body's list keeps (emptied) before it drops them: a list, not a deque,
# because compiled its appends and reads are direct calls, and it costs a tenth to make.
COMPACT_AFTER: Final = 64
# `new_future()`: a future of the running loop, what `loop.create_future()` makes (uvloop's too),
# without the keyword argument that call passes on (a dict made and parsed: about 700 of the
# 1,400 instructions a future costs). For futures awaited in the running loop only.
new_future: Final = asyncio.Future


class Readable(Protocol):
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class BodyStream:
    """Chunks fed by a protocol's `data_received`, read by one coroutine.

    Above HIGH_WATER buffered bytes the producer's transport stops reading until the reader has
    brought the buffer under LOW_WATER: memory stays bounded whatever the body's size. The chunks
    are a list read from `_next` on; a read chunk's place is emptied at once, and dropped when
    the reader catches up or `COMPACT_AFTER` places are read.
    """

    __slots__ = (
        "_transport", "_chunks", "_next", "_size", "_eof", "_error", "_waiter", "paused", "total",
    )  # fmt: skip

    def __init__(self, transport: Readable) -> None:
        self._transport = transport
        self._chunks: list[bytes] = []
        self._next = 0  # the first chunk not read yet
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.total = 0

    @property
    def at_eof(self) -> bool:
        return self._eof and self._next == len(self._chunks)

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
        while self._next == len(self._chunks):
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = new_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._taken()
        self._size -= len(data)
        if self.paused and self._size < LOW_WATER:
            self.paused = False
            self._transport.resume_reading()
        return data

    def read_buffered(self) -> bytes:
        """Everything buffered now, without waiting (b"" if nothing is)."""
        chunks, first = self._chunks, self._next
        if first == len(chunks):
            return b""
        data = chunks[first] if first == len(chunks) - 1 else b"".join(chunks[first:])
        self._chunks, self._next = [], 0
        self._size = 0
        if self.paused:
            self.paused = False
            self._transport.resume_reading()
        return data

    def _taken(self) -> bytes:
        """The next chunk, its place emptied (the list no longer holds it)."""
        chunks, first = self._chunks, self._next
        data = chunks[first]
        if first + 1 == len(chunks):
            self._chunks, self._next = [], 0  # caught up
        elif first + 1 == COMPACT_AFTER:
            del chunks[: first + 1]
            self._next = 0
        else:
            chunks[first] = b""
            self._next = first + 1
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
            self._waiter = new_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
