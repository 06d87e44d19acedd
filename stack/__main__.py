"""`make run`: start the whole stack in the foreground; Ctrl-C or SIGTERM stops it all.

`make fleet` (`python -m stack fleet`): the same stack with a real etcd and FLEET_REPLICAS proxy
replicas reading their table from it; an empty store is first seeded from routes.yaml.

Dry-run writes need one secret shared by the proxy, the gateways and the source systems:
STRANGLER_SHADOW_SECRET when set (a test that wants to sign its own dry runs sets it), else a
fresh random one for this run. It is handed to them in their environment and never printed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace

from source_systems.auth.clients import DEMO_CLIENTS, INTROSPECT
from stack.runner import Stack, StartupError
from stack.services import (
    FLEET_REPLICAS,
    StackConfig,
    fleet_services,
    replica_name,
    replica_ports,
    seed,
    services,
    start_waves,
)


def main(argv: Sequence[str] = ()) -> int:
    fleet = list(argv) == ["fleet"]
    if list(argv) not in ([], ["fleet"]):
        print("usage: python -m stack [fleet]", file=sys.stderr)
        return 2
    if fleet and shutil.which("etcd") is None:
        print("stack: etcd is not installed (Debian: apt-get install etcd-server)", file=sys.stderr)
        return 1
    config = StackConfig.from_env()
    secret_source = "from the environment" if config.shadow_secret else "generated for this run"
    config = replace(config, shadow_secret=config.shadow_secret or secrets.token_hex(32))
    if fleet:
        config = config.fleet()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    token = os.environ.setdefault("STRANGLER_ADMIN_TOKEN", secrets.token_urlsafe(12))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Stack() as stack:
        try:
            start(stack, config, stop)
        except StartupError as exc:
            if stop.is_set():
                return 0
            print(f"stack: {exc}", file=sys.stderr)
            return 1
        if stop.is_set():
            return 0
        # One write, so the services' own output cannot land inside the table.
        print(summary(config, token, secret_source), flush=True)
        while not stop.wait(0.5):
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"stack: {name} exited with {proc.returncode}", file=sys.stderr)
                    return 1
    return 0


def start(stack: Stack, config: StackConfig, stop: threading.Event) -> None:
    """Every service, dependencies first, in waves started together (`start_waves`; a fleet's
    store seeded before its proxies); stops early once `stop` is set."""
    fleet = config.store is not None
    for wave in start_waves(fleet_services(config) if fleet else services(config)):
        if fleet and replica_name(1) in [service.name for service in wave]:
            seed_store(config)
        if stop.is_set():
            return
        stack.start_together(wave)
        if stop.is_set():
            return


def seed_store(config: StackConfig) -> None:
    """Push routes.yaml into the store unless it already holds a table (kept across runs)."""
    result = subprocess.run(seed(config), timeout=120)
    if result.returncode != 0:
        raise StartupError(f"seeding the store from {config.routes} failed")


def oauth_clients() -> list[str]:
    """The demo API clients the auth system seeds (not the gateways' own), and how to use one."""
    lines = [
        f"{'oauth client':<13} {client.client_id}:{client.secret} (scope {' '.join(client.scopes)})"
        for client in DEMO_CLIENTS
        if INTROSPECT not in client.scopes
    ]
    lines.append(
        "get a token:  POST /oauth/token on auth, HTTP Basic client:secret, "
        "grant_type=client_credentials"
    )
    return lines


def summary(config: StackConfig, token: str, secret_source: str) -> str:
    """Where everything answers, one line per service (and per proxy replica's admin port);
    the demo OAuth clients; that write shadowing is available, and where its secret came from
    (never the secret)."""
    fleet = config.store is not None
    listed = fleet_services(config) if fleet else services(config)
    lines = [f"{service.name:<13} {service.url}" for service in listed]
    numbers = range(1, FLEET_REPLICAS + 1) if fleet else range(1, 2)
    admins = [(n, config.url(replica_ports(n)[1])) for n in numbers]
    for n, admin in admins:
        label = "dashboard" if n == 1 else f"dashboard-{n}"
        note = f"  (admin token: {token})" if n == 1 else ""
        lines.append(f"{label:<13} {admin}/-/{note}")
    for n, admin in admins:
        lines.append(f"{'metrics' if n == 1 else f'metrics-{n}':<13} {admin}/metrics")
    lines += oauth_clients()
    if config.store is not None:
        lines.append(f"{'store':<13} {config.store}")
        lines.append(f"flip with:    strangler flip RESOURCE BACKEND --store {config.store}")
        lines.append(f"check with:   strangler status --fleet --store {config.store}")
    lines.append(f"write shadowing is available (dry-run secret {secret_source})")
    lines.append("stack is up; Ctrl-C stops every process")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
