"""A real loopback HTTP/1.1 server for the load generators' tests (bench.instructions,
bench.workers): it answers a fixed 200 to every request head and counts the requests of each
connection. One thread accepts, one thread per connection answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class CountingServer:
    """`requests[i]`: the requests answered on the i-th connection accepted."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[int] = []
        self.threads: list[threading.Thread] = []

    @property
    def total(self) -> int:
        return sum(self.requests)

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.requests.append(0)
            thread = threading.Thread(
                target=self.answer, args=(conn, len(self.requests) - 1), daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def answer(self, conn: socket.socket, index: int) -> None:
        buffer = b""
        with conn:
            while data := conn.recv(65536):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.requests[index] += 1
                    conn.sendall(OK)

    def join_connections(self) -> None:
        """Wait until every connection's thread has ended (the client closed them all)."""
        for thread in self.threads:
            thread.join(5)


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    """A `CountingServer` accepting on its own thread; shut down and joined on exit."""
    server = CountingServer()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        server.listener.close()
        thread.join(5)
    assert not thread.is_alive()
