"""What one proxy process knows at run time, kept on the app (never in module globals)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from proxy.migration.fallback import DebtRegistry
from proxy.migration.guard import Guards
from proxy.migration.shadow import Shadows
from proxy.observe.metrics import Metrics
from proxy.routing.routes import RouteTable
from proxy.settings import Settings


@dataclass
class ProxyState:
    """One per process. `table` is swapped whole by a reload; a request reads it once."""

    settings: Settings
    table: RouteTable
    metrics: Metrics
    registry: CollectorRegistry
    loaded_at: float
    last_reload_error: str | None = None
    reloads_started: int = 0  # proxy.reload: tickets handed out, one per reload
    reload_reported: int = 0  # the ticket of the latest reload whose outcome was applied
    route_info_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one publisher at a time
    draining: bool = False
    guards: Guards = field(default_factory=Guards)
    debt: DebtRegistry = field(default_factory=DebtRegistry)  # fallback request shapes
    shadows: Shadows | None = None  # shadow traffic; started by the server
