"""`make run`: start the whole stack in the foreground; Ctrl-C or SIGTERM stops it all."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading

from stack.runner import Stack, StartupError
from stack.services import StackConfig, services


def main() -> int:
    config = StackConfig.from_env()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    token = os.environ.setdefault("STRANGLER_ADMIN_TOKEN", secrets.token_urlsafe(12))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Stack() as stack:
        try:
            for service in services(config):
                stack.start(service)
                if stop.is_set():
                    return 0
        except StartupError as exc:
            print(f"stack: {exc}", file=sys.stderr)
            return 1
        # One write, so the services' own output cannot land inside the table.
        print(summary(config, token), flush=True)
        while not stop.wait(0.5):
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"stack: {name} exited with {proc.returncode}", file=sys.stderr)
                    return 1
    return 0


def summary(config: StackConfig, token: str) -> str:
    """Where everything answers, one line per service."""
    admin = config.url("proxy_admin")
    lines = [f"{service.name:<13} {service.url}" for service in services(config)]
    lines.append(f"{'dashboard':<13} {admin}/-/  (admin token: {token})")
    lines.append(f"{'metrics':<13} {admin}/metrics")
    lines.append("stack is up; Ctrl-C stops every process")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
