"""Connection upgrades (RFC 9110 section 7.8): which requests may become tunnels, and the tunnel.

A request with `Connection: upgrade` and `Upgrade: X` (a WebSocket handshake, say) and no body
goes to its route's backend like any other request, with `Upgrade: X` and `Connection: upgrade`.
When the backend answers `101 Switching Protocols`, the proxy relays that head and `splice`s the
two connections: bytes flow both ways untouched, through bounded buffers, until either side closes
or none moves for `Settings.tunnel_idle_timeout` seconds. The backend connection never goes back
to its pool. Any other answer is an ordinary response, and the client connection goes on as
HTTP/1.1 (nginx does the same). `h2c` is never tunnelled: see `upgrade_protocol`.

This module knows nothing of HTTP beyond `upgrade_protocol`: `proxy.dataplane.forward` writes the
101 and hands `splice` the two connections as `End`s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.http.streams import HIGH_WATER, LOW_WATER


def upgrade_protocol(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The `Upgrade` value to forward for a request that asks to switch protocols, or None when
    it is not to be tunnelled: no `Upgrade`, or an HTTP/2 cleartext upgrade (`h2c` among the
    protocols, or an `HTTP2-Settings` header), which is forwarded without its upgrade instead.

    >>> upgrade_protocol([(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")])
    b'websocket'
    >>> upgrade_protocol([(b"Upgrade", b"h2c"), (b"HTTP2-Settings", b"AAMAAABkAAQ")]) is None
    True
    """
    protocols: list[bytes] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"http2-settings":
            return None
        if lowered == b"upgrade":
            protocols.append(value)
    joined = b", ".join(protocols)
    if any(token.strip().lower() == b"h2c" for token in joined.split(b",")):
        return None
    return joined.strip() or None


@dataclass(frozen=True, slots=True)
class End:
    """One connection of a tunnel, as its HTTP protocol hands it over."""

    transport: asyncio.Transport  # its reading paused; the tunnel takes over its protocol
    buffered: bytes = b""  # received after the HTTP head, not relayed yet: goes first
    write_paused: bool = False  # its write buffer is over the high-water mark right now


class _Side(asyncio.Protocol):
    """One connection's protocol while tunnelled: what it receives goes to the other side.

    Backpressure: when this side's write buffer goes over HIGH_WATER (`pause_writing`), the
    other side stops reading until it is back under LOW_WATER.
    """

    def __init__(self, tunnel: Tunnel, end: End) -> None:
        self._tunnel = tunnel
        self.transport = end.transport
        self.previous = end.transport.get_protocol()  # told of the close when the tunnel ends
        self.peer = self
        self.received = 0
        self.lost = end.transport.is_closing()  # closed before the tunnel began
        self.started = False  # the transport's protocol is this one
        self.eof = False  # the far end of this connection sent its last byte
        self.paused = False  # reading paused: the other side's write buffer is full

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._tunnel.touch()
        if not self.peer.lost:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        self._tunnel.half_closed(self)
        return True  # the tunnel closes the transport (ignored for TLS, which closes itself)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._tunnel.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.peer.pause()

    def resume_writing(self) -> None:
        self.peer.resume()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            if not self.lost:
                self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if not (self.lost or self.eof):
                self.transport.resume_reading()

    def start(self, buffered: bytes) -> None:
        """Take the transport over, relay what the HTTP side had already received, read on."""
        if self.lost:
            return
        self.transport.set_protocol(self)
        self.started = True
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        if buffered:
            self.peer.received += len(buffered)
            self.transport.write(buffered)
        if not self.paused:
            self.transport.resume_reading()

    def close(self, *, abort: bool = False) -> None:
        if not self.lost:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()  # what is buffered still goes out first


class Tunnel:
    """Two connections spliced both ways; `done` when both are closed."""

    def __init__(self, client: End, upstream: End, idle_timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.client = _Side(self, client)
        self.upstream = _Side(self, upstream)
        self.client.peer, self.upstream.peer = self.upstream, self.client
        self.client.paused = upstream.write_paused
        self.upstream.paused = client.write_paused
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._idle_timeout = idle_timeout
        self._last_io = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._lost: list[tuple[_Side, Exception | None]] = []

    def start(self, client_buffered: bytes, upstream_buffered: bytes) -> None:
        """Relay both sides' buffered bytes (to the other side), then read both."""
        self.upstream.start(client_buffered)
        self.client.start(upstream_buffered)
        self._timer = self._loop.call_at(self._last_io + self._idle_timeout, self._on_timer)
        for side in (self.client, self.upstream):
            if side.lost:
                self.side_lost(side, None)

    def touch(self) -> None:
        self._last_io = self._loop.time()

    def half_closed(self, side: _Side) -> None:
        """`side`'s far end sent its last byte: the other connection is half-closed in turn;
        once both far ends are done, or when the other cannot half-close (TLS), both close."""
        peer = side.peer
        if peer.eof or peer.lost or not peer.transport.can_write_eof():
            self.close()
        else:
            peer.transport.write_eof()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        """One side closed: so does the other. Done once both are closed."""
        if any(lost is side for lost, _ in self._lost):
            return
        self._lost.append((side, exc))
        side.peer.close()
        if len(self._lost) == 2:
            self._finish()

    def close(self, *, abort: bool = False) -> None:
        self.client.close(abort=abort)
        self.upstream.close(abort=abort)

    def _on_timer(self) -> None:
        """Nothing moved either way for the idle timeout: both connections are cut."""
        self._timer = None
        deadline = self._last_io + self._idle_timeout
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self.close(abort=True)

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.done.done():
            self.done.set_result(None)
        # After the task awaiting `done` has run on: the HTTP protocols learn the close last.
        for side, exc in self._lost:
            if side.started:
                self._loop.call_soon(side.previous.connection_lost, exc)


async def splice(client: End, upstream: End, idle_timeout: float) -> int:
    """Relay bytes between `client` and `upstream` until the tunnel ends: either side closing
    closes both, a half-close (EOF) is passed on, and `idle_timeout` seconds without a byte
    either way cut both. Returns the number of bytes sent to the client.

    Cancelled, it aborts both connections.
    """
    tunnel = Tunnel(client, upstream, idle_timeout)
    tunnel.start(client.buffered, upstream.buffered)
    try:
        await tunnel.done
    finally:
        tunnel.close(abort=True)
    return tunnel.upstream.received
