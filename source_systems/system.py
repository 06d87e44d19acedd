"""What a source system is: a name, its collections, the fields worth indexing, its seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
Records = dict[str, list[Record]]


@dataclass(frozen=True)
class System:
    """A source system as data; the engine (store + app) does the rest.

    `indexes` names the top-level fields that lists are commonly filtered on, per collection.
    `seed` returns the demo records of every collection; it must be deterministic.
    """

    name: str
    collections: tuple[str, ...]
    indexes: tuple[tuple[str, str], ...]
    seed: Callable[[], Records]
