"""Session-wide processes: one world of source systems and both gateways, started once.

Tests that change data create their own records (never edit seeded ones), so they can share
this world. Tests that stop or restart a process use `make_world` for a world of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import World, make_world
from tests.support.etcd import etcd, etcd_session, etcd_url  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("world")) as started:
        yield started


@pytest.fixture(scope="session")
def legacy_url(world: World) -> str:
    """Base URL of the legacy Flask gateway under gunicorn."""
    if "legacy" not in world.stack.procs:
        world.start_legacy()
    return world.url("legacy")


@pytest.fixture(scope="session")
def drf_url(world: World) -> str:
    """Base URL of the DRF gateway under gunicorn."""
    if "drf" not in world.stack.procs:
        world.start_drf()
    return world.url("drf")
