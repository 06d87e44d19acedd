"""stack.ports: a free loopback port, and waiting for something to listen on one."""

from __future__ import annotations

import socket
import time

import pytest

from stack.ports import free_port, wait_port


def test_a_free_port_can_be_bound_and_waited_for() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        wait_port(port, timeout=1)


def test_waiting_on_a_port_nothing_listens_on_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"nothing listens on 127\.0\.0\.1:\d+"):
        wait_port(free_port(), timeout=0.2)
    assert time.monotonic() - started < 1.0
