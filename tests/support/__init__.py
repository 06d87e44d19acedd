"""Test helpers shared by every suite: free ports and a world of real processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from stack.ports import free_port as free_port  # the tests' one place to ask
from stack.runner import Stack
from stack.services import (
    AUTH_SYSTEM,
    DEFAULT_PORTS,
    SOURCE_SYSTEMS,
    StackConfig,
    gunicorn,
    proxy,
    source_system,
)

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "demo"
# The API's resources with the source system that owns each one's records.
RESOURCE_SOURCES = (
    ("bookings", "reservations"),
    ("customers", "reservations"),
    ("departures", "reservations"),
    ("tours", "operations"),
    ("itineraries", "operations"),
    ("itinerary_maps", "operations"),
    ("accommodations", "operations"),
)
API_RESOURCES = tuple(resource for resource, _ in RESOURCE_SOURCES)

# The metrics contract: DESIGN.md's table, plus the two counters and the tunnel gauge added
# since (README lists all). Name -> (type, label names). tests/proxy and tests/deploy both hold
# the code to it.
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "strangler_requests_total": ("counter", frozenset({"resource", "backend", "method", "code"})),
    "strangler_request_duration_seconds": ("histogram", frozenset({"resource", "backend"})),
    "strangler_upstream_errors_total": ("counter", frozenset({"backend", "kind"})),
    "strangler_in_flight_requests": ("gauge", frozenset({"backend"})),
    "strangler_route_info": ("gauge", frozenset({"resource", "backend"})),
    "strangler_config_reloads_total": ("counter", frozenset({"result"})),
    "strangler_config_last_reload_success": ("gauge", frozenset()),
    "strangler_shadow_comparisons_total": ("counter", frozenset({"resource", "result"})),
    "strangler_shadow_dropped_total": ("counter", frozenset({"resource"})),
    "strangler_shadow_mismatches_total": ("counter", frozenset({"resource", "class"})),
    "strangler_fallbacks_total": (
        "counter",
        frozenset({"resource", "from_backend", "to_backend", "code"}),
    ),
    "strangler_pinned_total": ("counter", frozenset({"resource", "backend"})),
    "strangler_guard_rollbacks_total": ("counter", frozenset({"resource"})),
    "strangler_guard_dry_run_trips_total": ("counter", frozenset({"resource"})),
    "strangler_open_tunnels": ("gauge", frozenset({"backend"})),
    "strangler_rollout_aborts_total": ("counter", frozenset({"resource"})),
    "strangler_rollout_state": ("gauge", frozenset({"resource", "state"})),
    "strangler_table_revision": ("gauge", frozenset()),
    "strangler_store_up": ("gauge", frozenset()),
    "strangler_resource_stage": ("gauge", frozenset({"resource", "stage"})),
}
HEADERS = {"X-Application-Key": API_KEY}


def free_config(data_dir: Path, **overrides: object) -> StackConfig:
    """A stack configuration on free loopback ports with its own data directory."""
    ports = {key: free_port() for key in DEFAULT_PORTS}
    config = StackConfig(ports=ports, data_dir=data_dir, python=sys.executable, gateway_workers=2)
    return replace(config, **overrides)  # type: ignore[arg-type]


@dataclass
class World:
    """Running processes of the stack, started by the tests on free ports."""

    config: StackConfig
    stack: Stack

    def url(self, name: str) -> str:
        return self.config.url(name)

    def start_sources(self) -> None:
        """The source systems, and the auth system the gateways introspect tokens at."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        # all four at once, as `make run` starts them: none needs another to start
        names = (*SOURCE_SYSTEMS, AUTH_SYSTEM)
        self.stack.start_together(source_system(self.config, name) for name in names)

    def start_legacy(self, env: Mapping[str, str] | None = None) -> str:
        """The legacy gateway; `env` adds to its environment (e.g. STRANGLER_DEMO_NOW)."""
        service = gunicorn(self.config, "legacy", "legacy_flask:create_app()")
        self.stack.start(replace(service, env={**service.env, **(env or {})}))
        return self.url("legacy")

    def start_drf(self, env: Mapping[str, str] | None = None) -> str:
        """The DRF gateway; `env` adds to its environment (e.g. STRANGLER_DRF_FAULTS)."""
        service = gunicorn(self.config, "drf", "drf_app.wsgi:application")
        self.stack.start(replace(service, env={**service.env, **(env or {})}))
        return self.url("drf")

    def start_proxy(self, routes: Path, env: Mapping[str, str] | None = None) -> str:
        """The proxy in front of this world's gateways, reading `routes`."""
        service = proxy(replace(self.config, routes=routes))
        self.stack.start(replace(service, env={**service.env, **(env or {})}))
        return self.url("proxy")

    def log(self, name: str) -> str:
        """What a service printed so far (its stdout and stderr)."""
        assert self.stack.log_dir is not None
        return (self.stack.log_dir / f"{name}.log").read_text(errors="replace")


@contextmanager
def make_world(data_dir: Path, log_dir: Path | None = None, **overrides: object) -> Iterator[World]:
    """Source systems on free ports, stopped (with anything else started) on exit; `overrides`
    change the configuration (e.g. `shadow_secret`)."""
    config = free_config(data_dir, **overrides)
    with Stack(cwd=ROOT, log_dir=log_dir or data_dir / "logs") as stack:
        world = World(config, stack)
        world.start_sources()
        yield world


async def serve_on_loopback(runner: web.AppRunner) -> int:
    """Serve `runner` on 127.0.0.1 at a port the kernel picks while binding, and return it.

    For servers in the test's own process: binding port 0 cannot race another process for the
    port, as choosing a free port first and binding it afterwards can.
    """
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return int(runner.addresses[-1][1])
