"""proxy.reload: reload_now and a real watchfiles watcher on temp directories."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from proxy.reload import reload_now, resolution_chain, watch_routes
from proxy.state import ProxyState
from tests.proxy.control_fixtures import ROUTES, make_state, sample, write

FLIPPED = ROUTES.replace("bookings: legacy", "bookings: drf")
BROKEN = ROUTES.replace("tours: drf", "tours: drff")
Watch = Callable[[Path], Awaitable[ProxyState]]
APPLY_WITHIN = 1.0  # seconds; the target is 0.1 s, machines running the suite are noisy


def reloads(state: ProxyState, result: str) -> float | None:
    return sample(state, "strangler_config_reloads_total", result=result)


def last_success(state: ProxyState) -> float | None:
    return sample(state, "strangler_config_last_reload_success")


# -- reload_now --------------------------------------------------------------------------------


def test_valid_change_is_swapped_in(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    before = state.loaded_at
    write(state.settings.routes, FLIPPED)
    assert reload_now(state) is True
    assert state.table.routes["bookings"].backend == "drf"
    assert state.loaded_at >= before
    assert (reloads(state, "success"), last_success(state)) == (1.0, 1.0)
    assert sample(state, "strangler_route_info", resource="bookings", backend="drf") == 1.0
    assert sample(state, "strangler_route_info", resource="bookings", backend="legacy") is None


def test_unchanged_content_is_a_no_op(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    write(state.settings.routes, ROUTES)
    assert reload_now(state) is True
    assert state.table is table
    assert reloads(state, "success") is None


def test_invalid_file_keeps_the_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    write(state.settings.routes, BROKEN)
    assert reload_now(state) is False
    assert state.table is table
    error = f"{state.settings.routes}:17: unknown backend 'drff' for resource 'tours'"
    assert state.last_reload_error == error
    assert (reloads(state, "failure"), last_success(state)) == (1.0, 0.0)
    assert [record.getMessage() for record in caplog.records] == [f"routes reload failed: {error}"]
    write(state.settings.routes, ROUTES)  # fixed back to the table in force: error cleared
    assert reload_now(state) is True
    assert (state.table, state.last_reload_error, last_success(state)) == (table, None, 1.0)


def test_deleted_file_keeps_the_table(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    state.settings.routes.unlink()
    assert reload_now(state) is False
    assert state.table is table
    assert state.last_reload_error == (
        f"{state.settings.routes}: cannot read: No such file or directory"
    )
    assert (reloads(state, "failure"), last_success(state)) == (1.0, 0.0)


def kubelet_layout(directory: Path, text: str) -> Path:
    """routes.yaml -> ..data/routes.yaml, ..data -> ..2026_11_28_00_00_00.1, like a ConfigMap."""
    version = directory / "..2026_11_28_00_00_00.1"
    version.mkdir()
    write(version / "routes.yaml", text)
    (directory / "..data").symlink_to(version.name)
    (directory / "routes.yaml").symlink_to("..data/routes.yaml")
    return directory / "routes.yaml"


def kubelet_update(directory: Path, text: str, stamp: str) -> None:
    """What kubelet does on a ConfigMap change: new dir, swap ..data by rename, drop the old."""
    old = os.readlink(directory / "..data")
    version = directory / f"..2026_11_28_00_00_{stamp}"
    version.mkdir()
    write(version / "routes.yaml", text)
    (directory / "..data_tmp").symlink_to(version.name)
    os.rename(directory / "..data_tmp", directory / "..data")
    (directory / old / "routes.yaml").unlink()
    (directory / old).rmdir()


def test_resolution_chain_of_a_configmap(tmp_path: Path) -> None:
    routes = kubelet_layout(tmp_path, ROUTES)
    assert resolution_chain(routes) == (
        f"{tmp_path}/routes.yaml",
        f"{tmp_path}/..data/routes.yaml",
        f"{tmp_path}/..data",
        f"{tmp_path}/..2026_11_28_00_00_00.1/routes.yaml",
    )


# -- the watcher -------------------------------------------------------------------------------


@pytest.fixture
async def watching() -> AsyncIterator[Watch]:
    tasks: list[asyncio.Task[None]] = []

    async def start(routes: Path) -> ProxyState:
        state = make_state(routes)
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(watch_routes(state, ready=ready)))
        await asyncio.wait_for(ready.wait(), 5)
        return state

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float = APPLY_WITHIN) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    start = time.perf_counter()
    while not condition():
        assert time.perf_counter() - start < timeout, "not applied in time"
        await asyncio.sleep(0.002)
    return time.perf_counter() - start


def on(state: ProxyState, resource: str) -> str:
    return state.table.backend_for(resource)


async def test_watcher_applies_a_valid_edit(tmp_path: Path, watching: Watch) -> None:
    state = await watching(write(tmp_path / "routes.yaml"))
    for text, backend in [(FLIPPED, "drf"), (ROUTES, "legacy"), (FLIPPED, "drf")]:
        write(state.settings.routes, text)
        await until(lambda backend=backend: on(state, "bookings") == backend)
    assert reloads(state, "success") == 3.0


async def test_watcher_applies_a_rename_save(tmp_path: Path, watching: Watch) -> None:
    state = await watching(write(tmp_path / "routes.yaml"))
    temp = write(tmp_path / ".routes.yaml.swp", FLIPPED)
    os.rename(temp, state.settings.routes)
    await until(lambda: on(state, "bookings") == "drf")


async def test_watcher_ignores_other_files(tmp_path: Path, watching: Watch) -> None:
    state = await watching(write(tmp_path / "routes.yaml"))
    write(tmp_path / "other.yaml", BROKEN)
    write(tmp_path / "routes.audit.jsonl", "{}\n")
    await asyncio.sleep(0.3)
    assert (reloads(state, "failure"), reloads(state, "success")) == (None, None)


async def test_watcher_follows_a_configmap_update(tmp_path: Path, watching: Watch) -> None:
    state = await watching(kubelet_layout(tmp_path, ROUTES))
    kubelet_update(tmp_path, FLIPPED, "01.2")
    await until(lambda: on(state, "bookings") == "drf")
    kubelet_update(tmp_path, ROUTES.replace("tours: drf", "tours: legacy"), "02.3")
    await until(lambda: on(state, "tours") == "legacy")
    assert on(state, "bookings") == "legacy"


async def test_watcher_keeps_the_table_on_an_invalid_file(tmp_path: Path, watching: Watch) -> None:
    state = await watching(write(tmp_path / "routes.yaml"))
    table = state.table
    write(state.settings.routes, BROKEN)
    await until(lambda: reloads(state, "failure") is not None)
    assert state.table is table
    assert last_success(state) == 0.0
    assert state.last_reload_error is not None
    assert state.last_reload_error.endswith(":17: unknown backend 'drff' for resource 'tours'")
    write(state.settings.routes, FLIPPED)
    await until(lambda: on(state, "bookings") == "drf")
    assert (state.last_reload_error, last_success(state)) == (None, 1.0)


async def test_watcher_keeps_the_table_when_the_file_is_deleted(
    tmp_path: Path, watching: Watch
) -> None:
    state = await watching(write(tmp_path / "routes.yaml"))
    table = state.table
    state.settings.routes.unlink()
    await until(lambda: reloads(state, "failure") == 1.0)
    assert state.table is table
    write(state.settings.routes, FLIPPED)
    await until(lambda: on(state, "bookings") == "drf")
