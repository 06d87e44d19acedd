"""What one proxy process knows at run time, kept on the app (never in module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from proxy.fallback import DebtRegistry
from proxy.guard import Guards
from proxy.metrics import Metrics
from proxy.routes import RouteTable
from proxy.settings import Settings
from proxy.shadow import Shadows


@dataclass
class ProxyState:
    """One per process. `table` is swapped whole by a reload; a request reads it once."""

    settings: Settings
    table: RouteTable
    metrics: Metrics
    registry: CollectorRegistry
    loaded_at: float
    last_reload_error: str | None = None
    draining: bool = False
    guards: Guards = field(default_factory=Guards)
    debt: DebtRegistry = field(default_factory=DebtRegistry)  # fallback request shapes
    shadows: Shadows | None = None  # shadow traffic; started by the server
