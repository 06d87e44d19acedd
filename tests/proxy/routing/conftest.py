"""The design example of routes.yaml and its table, shared by the model and parser tests."""

from __future__ import annotations

import pytest

from proxy.routing.model import RouteTable
from proxy.routing.parser import parse_table

DESIGN_EXAMPLE = """\
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000        # overridable from the environment
    connect_timeout: 2                # seconds
    read_timeout: 30                  # seconds between bytes, not a total
  drf:
    url: http://127.0.0.1:8000
default: legacy                       # resources not listed below
resources:
  bookings: drf                       # short form: the whole resource
  customers: legacy
  itineraries:                        # long form
    backend: legacy
    methods: {GET: drf}               # per-method override
    canary: {backend: drf, percent: 10, sticky: "header:X-Application-Key"}
    shadow: {backend: drf, percent: 100, ignore: ["$.meta.generated_at"]}
    fallback: {backend: legacy, on: [404, 405, 501]}
    guard: {max_error_rate: 0.05, min_requests: 50, window: 60}
"""


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return parse_table(DESIGN_EXAMPLE, environ={})
