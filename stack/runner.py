"""Start, watch and stop the stack's processes (used by `make run` and by the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from stack.services import Service


class StartupError(RuntimeError):
    """A service exited or did not answer in time."""


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when something speaks HTTP at `url` (any status counts as an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


class Stack:
    """A set of running services, each in its own process group so that gunicorn's
    workers go down with their master."""

    def __init__(
        self,
        cwd: Path | None = None,
        log_dir: Path | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.cwd = cwd or Path.cwd()
        self.log_dir = log_dir
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.services: dict[str, Service] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def start(self, service: Service, timeout: float = 30.0) -> None:
        self.start_together([service], timeout)

    def start_together(self, services: Iterable[Service], timeout: float = 30.0) -> None:
        """Start every one of `services` at once (none needs another to start), then wait until
        each answers: their startups overlap instead of adding up."""
        listed = list(services)
        for service in listed:
            self.launch(service)
        for service in listed:
            self.wait_ready(service.name, timeout)

    def launch(self, service: Service) -> None:
        """Start `service`'s process, without waiting for it to answer."""
        env = {**self.base_env, **service.env, "PYTHONUNBUFFERED": "1"}
        out: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{service.name}.log", "ab")  # noqa: SIM115
            self._logs[service.name] = out
        proc = subprocess.Popen(
            service.argv,
            cwd=self.cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.procs[service.name] = proc
        self.services[service.name] = service

    def wait_ready(self, name: str, timeout: float) -> None:
        proc, service = self.procs[name], self.services[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartupError(f"{name} exited with {proc.returncode} while starting")
            if answers(service.health_url):
                return
            time.sleep(0.05)
        raise StartupError(f"{name} did not answer at {service.health_url} within {timeout}s")

    def signal(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)

    def stop(self, name: str, grace: float = 10.0) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                proc.wait()
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()
        return proc.returncode

    def restart(self, name: str, timeout: float = 30.0) -> None:
        self.stop(name)
        self.start(self.services[name], timeout)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
