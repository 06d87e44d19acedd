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
                print(f"{service.name:<13} {service.url}", flush=True)
                if stop.is_set():
                    return 0
        except StartupError as exc:
            print(f"stack: {exc}", file=sys.stderr)
            return 1
        admin = config.url("proxy_admin")
        print(f"{'dashboard':<13} {admin}/-/  (admin token: {token})")
        print(f"{'metrics':<13} {admin}/metrics")
        print("stack is up; Ctrl-C stops every process", flush=True)
        while not stop.wait(0.5):
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"stack: {name} exited with {proc.returncode}", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
