"""What one proxy process knows at run time, kept on the app (never in module globals)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from proxy.migration.guard import Guards
from proxy.migration.shadow import Shadows
from proxy.observe.debt import DebtRegistry
from proxy.observe.metrics import Metrics
from proxy.routing.model import RouteTable
from proxy.routing.reload import Tickets
from proxy.settings import Settings


@dataclass(slots=True)
class ProxyState:
    """One per process. `table` is swapped whole by a reload; a request reads it once."""

    settings: Settings
    table: RouteTable
    metrics: Metrics
    registry: CollectorRegistry
    loaded_at: float
    last_reload_error: str | None = None
    reloads: Tickets = field(default_factory=Tickets)  # the order of proxy.routing.reload's
    draining: bool = False
    guards: Guards = field(default_factory=Guards)
    debt: DebtRegistry = field(default_factory=DebtRegistry)  # fallback request shapes
    shadows: Shadows | None = None  # shadow traffic; started by the server

    # What proxy.routing.reload hands its outcome to (this is its `ReloadTarget`).

    def swap_table(self, table: RouteTable) -> None:
        """A reload's new table, in force from now on (one assignment); a success counted."""
        self.table = table
        self.loaded_at = time.time()
        self.last_reload_error = None
        self.metrics.reload_result(True)

    def reload_failed(self, error: str) -> None:
        """A reload that kept the table in force: `error` is its `file:line: message` lines."""
        self.last_reload_error = error
        self.metrics.reload_result(False)

    def publish_routes(self, table: RouteTable) -> None:
        """strangler_route_info for `table` (blocking: a reload calls it in a thread)."""
        self.metrics.routes_loaded(table)
