"""A real etcd for the tests: Debian's etcd-server (`etcd`), on free loopback ports.

`.ci/system-deps` installs it; a missing binary fails the test, never skips it. Each server has
its own data directory; `url` is a store URL with a prefix of its own, and `fresh_url()` gives
another one, so tests sharing the session's server never see each other's keys.

Fixtures: `etcd` (a server for one test: kill, stop and restart it freely), `etcd_session` (one
server for the session: do not stop it) and `etcd_url` (a fresh prefix on the session's server).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.ports import free_port


class EtcdServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.url = self.fresh_url()
        self.process: subprocess.Popen[bytes] | None = None

    def fresh_url(self) -> str:
        """A store URL on this server with a prefix nobody used."""
        return f"etcd://127.0.0.1:{self.client_port}/strangler-{secrets.token_hex(4)}"

    def start(self, timeout: float = 20.0) -> None:
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("etcd is not installed: run .ci/system-deps (etcd-server)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        command = [
            binary,
            "--name", "default",
            "--data-dir", str(self.data),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
        ]  # fmt: skip
        with (self.directory / "etcd.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited ({self.process.returncode}):\n{self.log()}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise TimeoutError(f"etcd not healthy within {timeout}s:\n{self.log()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as answer:
                return bool(json.loads(answer.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def log(self) -> str:
        path = self.directory / "etcd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGSTOP: connections stay open, nothing answers (a partition). Returns once every
        thread of etcd has stopped: the signal is sent at once but lands later, and on a loaded
        machine a request sent meanwhile was answered (a flaky test in a CI run)."""
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not all_stopped(self.pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd (pid {self.pid}) did not stop within 5 s of SIGSTOP")
            time.sleep(0.001)

    def cont(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Kill if running, then start again on the same ports with the same data."""
        self.close()
        self.start()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.cont()
            self.kill()


def started_etcd(directory: Path) -> EtcdServer:
    server = EtcdServer(directory)
    server.start()
    return server


@pytest.fixture
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = started_etcd(tmp_path_factory.mktemp("etcd"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def etcd_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = started_etcd(tmp_path_factory.mktemp("etcd-session"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_url(etcd_session: EtcdServer) -> str:
    """A store URL with a fresh prefix on the session's etcd."""
    return etcd_session.fresh_url()


def all_stopped(pid: int) -> bool:
    """Whether every thread of `pid` is stopped (state T in /proc/<pid>/task/*/stat)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        if state not in ("T", "t"):
            return False
    return True
