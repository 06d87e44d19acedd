"""Helpers for the control-plane tests (routes, edit, reload, metrics, admin, cli)."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from proxy.observe.metrics import Metrics
from proxy.routing.parser import load_table
from proxy.settings import Settings
from proxy.state import ProxyState

ROUTES = """\
# routing table for the tests
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000   # the old stack
  drf:
    url: http://127.0.0.1:8000
default: legacy

resources:
  bookings: legacy               # short form
  customers: 'legacy'
  itineraries:                   # long form
    backend: legacy              # whole resource
    methods: {GET: drf}

  tours: drf
# trailing comment
"""

GROUP_ROUTES = """\
# a table with groups (proxy.routing.group_edit)
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings: legacy               # short form
  customers: 'legacy'
  payments:                      # long form
    backend: legacy              # whole resource
    methods: {GET: drf}
  tours: drf
  departures: legacy
groups:
  reservations: [bookings, customers, payments]   # flipped together
  catalogue: [tours, departures]
# trailing comment
"""


def write(path: Path, text: str = ROUTES) -> Path:
    path.write_text(text)
    return path


def make_state(path: Path, admin_token: str | None = None) -> ProxyState:
    """A process state for the routes file at `path`, with its own registry."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    table = load_table(path)
    metrics.routes_loaded(table)
    settings = Settings(routes=path, admin_token=admin_token)
    return ProxyState(settings, table, metrics, registry, time.time())


def sample(state: ProxyState, name: str, **labels: str) -> float | None:
    return state.registry.get_sample_value(name, labels)
