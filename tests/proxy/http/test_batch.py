"""proxy.http.batch: writes of one loop pass leave together, in order, bounded, never after a
close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from proxy.http.batch import WriteBatch


@dataclass
class Peer(asyncio.Protocol):
    """The receiving end: a real loopback server connection recording what arrives."""

    received: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


@dataclass
class Rig:
    server: asyncio.Server
    peers: list[Peer]

    async def connect(self) -> tuple[asyncio.Transport, Peer]:
        """A client transport and the server side that receives its writes."""
        expected = len(self.peers) + 1
        port = self.server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        await until(lambda: len(self.peers) >= expected)
        return transport, self.peers[expected - 1]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    peers: list[Peer] = []

    def accept() -> Peer:
        peers.append(Peer())
        return peers[-1]

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
    yield Rig(server, peers)
    server.close()
    await server.wait_closed()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def test_writes_wait_for_the_next_loop_pass_then_leave_in_order(rig: Rig) -> None:
    (one, peer_one), (two, peer_two) = await rig.connect(), await rig.connect()
    batch = WriteBatch()
    batch.write(one, b"a1 ")
    batch.write(two, b"b1 ")
    batch.write(one, b"a2 ")
    assert batch.size == 9
    assert one.get_write_buffer_size() == 0  # nothing handed to the transport yet
    await asyncio.sleep(0)  # the loop's next pass
    assert batch.size == 0
    batch.write(two, b"b2")
    await until(lambda: peer_one.received == b"a1 a2 " and peer_two.received == b"b1 b2")
    one.close()
    two.close()


async def test_flush_writes_at_once_and_the_scheduled_flush_finds_nothing(rig: Rig) -> None:
    transport, peer = await rig.connect()
    batch = WriteBatch()
    batch.write(transport, b"x" * 10)
    batch.flush()
    assert batch.size == 0
    batch.flush()  # nothing left: no second write
    await asyncio.sleep(0)
    await until(lambda: peer.received == b"x" * 10)
    await asyncio.sleep(0.05)
    assert peer.received == b"x" * 10
    transport.close()


async def test_flush_over_bounds_what_the_batch_holds(rig: Rig) -> None:
    transport, peer = await rig.connect()
    batch = WriteBatch()
    batch.write(transport, b"1" * 100)
    batch.flush_over(100)
    assert batch.size == 100  # not over the limit: kept for the pass's end
    batch.write(transport, b"2")
    batch.flush_over(100)
    assert batch.size == 0
    await until(lambda: peer.received == b"1" * 100 + b"2")
    transport.close()


async def test_a_transport_closing_meanwhile_is_skipped(rig: Rig) -> None:
    (gone, gone_peer), (kept, kept_peer) = await rig.connect(), await rig.connect()
    batch = WriteBatch()
    batch.write(gone, b"never")
    batch.write(kept, b"sent")
    gone.abort()
    await asyncio.sleep(0)
    await until(lambda: kept_peer.received == b"sent")
    await asyncio.wait_for(gone_peer.closed.wait(), 5)
    assert gone_peer.received == b""
    kept.close()
