"""proxy/http/streams.py's BodyStream: chunks come out whole and in order, the reader's side of a
long body never holds what it has read, and the producer pauses above HIGH_WATER until the reader
brings the buffer under LOW_WATER."""

from __future__ import annotations

import asyncio

from proxy.http.streams import COMPACT_AFTER, HIGH_WATER, LOW_WATER, BodyStream


class Transport:
    """The producer's transport as a BodyStream drives it: how often reading paused, resumed."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


async def test_chunks_come_out_in_order_then_the_end() -> None:
    body = BodyStream(Transport())
    for chunk in (b"a", b"bb", b"ccc"):
        body.feed(chunk)
    body.feed_eof()
    assert not body.at_eof
    assert [await body.read() for _ in range(4)] == [b"a", b"bb", b"ccc", b""]
    assert body.at_eof and body.total == 6


async def test_read_buffered_takes_what_is_unread_at_once() -> None:
    body = BodyStream(Transport())
    assert body.read_buffered() == b""
    body.feed(b"one")
    assert body.read_buffered() == b"one"
    for chunk in (b"1", b"2", b"3"):
        body.feed(chunk)
    assert await body.read() == b"1"
    assert body.read_buffered() == b"23"
    assert body.read_buffered() == b""
    body.feed_eof()
    assert body.at_eof


async def test_a_reader_one_chunk_behind_holds_no_read_chunk() -> None:
    body = BodyStream(Transport())
    body.feed(b"0")
    for n in range(1, 5000):
        body.feed(b"%d" % n)
        assert await body.read() == b"%d" % (n - 1)
        unread = body._chunks[body._next :]  # what the list still holds, read places aside
        assert unread == [b"%d" % n]
        assert len(body._chunks) <= COMPACT_AFTER
        assert not any(body._chunks[: body._next])  # read places are emptied
    assert await body.read() == b"4999"


async def test_a_waiting_reader_wakes_for_a_chunk_and_for_an_error() -> None:
    body = BodyStream(Transport())
    reader = asyncio.ensure_future(body.read())
    await asyncio.sleep(0)
    body.feed(b"late")
    assert await reader == b"late"
    reader = asyncio.ensure_future(body.read())
    await asyncio.sleep(0)
    body.set_exception(ConnectionResetError("gone"))
    try:
        await reader
    except ConnectionResetError as exc:
        assert str(exc) == "gone"
    else:
        raise AssertionError("the error did not reach the reader")


async def test_the_producer_pauses_above_high_water_and_resumes_under_low_water() -> None:
    transport = Transport()
    body = BodyStream(transport)
    chunk = b"x" * (64 * 1024)
    for _ in range(HIGH_WATER // len(chunk) + 1):
        body.feed(chunk)
    assert transport.calls == ["pause"] and body.paused
    while body.paused:
        await body.read()
    assert transport.calls == ["pause", "resume"]
    assert body._size < LOW_WATER
