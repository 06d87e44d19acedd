"""The source systems that own the data: reservations, crm and operations.

Each is a small HTTP + SQLite service built from a declaration (`system.System`) by one
generic engine (`store`, `query`, `app`). Run one with `python -m source_systems <name>`.
A fourth, `auth`, owns API clients and OAuth 2 tokens; it is a service of its own
(`source_systems.auth`), run the same way.
"""

from __future__ import annotations

from types import MappingProxyType

from source_systems import crm, operations, reservations
from source_systems.system import System

SYSTEMS: MappingProxyType[str, System] = MappingProxyType(
    {module.SYSTEM.name: module.SYSTEM for module in (reservations, crm, operations)}
)
