"""proxy.routing.reload: reload_now and a real watchfiles watcher on temp directories."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from proxy import cli, server
from proxy.routing import reload
from proxy.routing.reload import reload_now, reload_on, resolution_chain, watch_routes
from proxy.settings import Settings
from proxy.state import ProxyState
from tests.support.control import ROUTES, make_state, sample, write

FLIPPED = ROUTES.replace("bookings: legacy", "bookings: drf")
BROKEN = ROUTES.replace("tours: drf", "tours: drff")
Watch = Callable[[Path], Awaitable[ProxyState]]
APPLY_WITHIN = 1.0  # seconds; the target is 0.1 s, machines running the suite are noisy


def reloads(state: ProxyState, result: str) -> float | None:
    return sample(state, "strangler_config_reloads_total", result=result)


def last_success(state: ProxyState) -> float | None:
    return sample(state, "strangler_config_last_reload_success")


# -- reload_now --------------------------------------------------------------------------------


async def test_valid_change_is_swapped_in(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    before = state.loaded_at
    write(state.settings.routes, FLIPPED)
    assert await reload_now(state) is True
    assert state.table.routes["bookings"].backend == "drf"
    assert state.loaded_at >= before
    assert (reloads(state, "success"), last_success(state)) == (1.0, 1.0)
    assert sample(state, "strangler_route_info", resource="bookings", backend="drf") == 1.0
    assert sample(state, "strangler_route_info", resource="bookings", backend="legacy") is None


async def test_unchanged_content_is_a_no_op(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    write(state.settings.routes, ROUTES)
    assert await reload_now(state) is True
    assert state.table is table
    assert reloads(state, "success") is None


async def test_invalid_file_keeps_the_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    write(state.settings.routes, BROKEN)
    assert await reload_now(state) is False
    assert state.table is table
    error = f"{state.settings.routes}:17: unknown backend 'drff' for resource 'tours'"
    assert state.last_reload_error == error
    assert (reloads(state, "failure"), last_success(state)) == (1.0, 0.0)
    assert [record.getMessage() for record in caplog.records] == [f"routes reload failed: {error}"]
    write(state.settings.routes, ROUTES)  # fixed back to the table in force: error cleared
    assert await reload_now(state) is True
    assert (state.table, state.last_reload_error, last_success(state)) == (table, None, 1.0)


async def test_deleted_file_keeps_the_table(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    state.settings.routes.unlink()
    assert await reload_now(state) is False
    assert state.table is table
    assert state.last_reload_error == (
        f"{state.settings.routes}: cannot read: No such file or directory"
    )
    assert (reloads(state, "failure"), last_success(state)) == (1.0, 0.0)


# -- the size cap, and parsing off the loop ----------------------------------------------------

CAP = 1024 * 1024  # Settings.max_routes_bytes, STRANGLER_MAX_ROUTES_BYTES
LARGE = 25_000  # resources: about 0.4 MB, a few seconds to parse on the machines running the suite


def padded(text: str, size: int) -> str:
    """`text` and a comment line: valid routes.yaml of exactly `size` bytes."""
    return text + "#" * (size - len(text) - 1) + "\n"


def over_cap(path: Path, cap: int) -> str:
    return f"{path}:1: file is over the {cap}-byte limit (STRANGLER_MAX_ROUTES_BYTES)"


def large_table(resources: int) -> str:
    """ROUTES with `resources` more resources r0, r1, ... (odd ones on drf)."""
    lines = (f"  r{i}: {'drf' if i % 2 else 'legacy'}\n" for i in range(resources))
    return ROUTES + "".join(lines)


def test_the_cap_is_a_setting() -> None:
    assert Settings().max_routes_bytes == CAP
    assert Settings.from_env({"STRANGLER_MAX_ROUTES_BYTES": "4096"}).max_routes_bytes == 4096


async def test_a_file_over_the_cap_is_refused_and_the_table_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    table = state.table
    write(state.settings.routes, padded(FLIPPED, CAP + 1))  # valid YAML, one byte too many
    assert await reload_now(state) is False
    error = over_cap(state.settings.routes, CAP)
    assert state.last_reload_error == error
    assert state.table is table
    assert state.table.backend_for("bookings") == "legacy"
    assert (reloads(state, "failure"), last_success(state)) == (1.0, 0.0)
    assert [record.getMessage() for record in caplog.records] == [f"routes reload failed: {error}"]
    write(state.settings.routes, padded(FLIPPED, CAP))  # at the cap: read and applied
    assert await reload_now(state) is True
    assert state.table.backend_for("bookings") == "drf"
    assert state.last_reload_error is None


async def test_the_cap_follows_the_settings(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    state.settings = dataclasses.replace(state.settings, max_routes_bytes=len(FLIPPED) - 1)
    write(state.settings.routes, FLIPPED)
    assert await reload_now(state) is False
    assert state.last_reload_error == over_cap(state.settings.routes, len(FLIPPED) - 1)
    assert state.table.backend_for("bookings") == "legacy"


def test_startup_and_validate_respect_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = write(tmp_path / "routes.yaml")
    cap = len(ROUTES) - 1
    assert server.serve(Settings(routes=routes, max_routes_bytes=cap)) == 1  # binds nothing
    assert capsys.readouterr().err == over_cap(routes, cap) + "\n"
    monkeypatch.setenv("STRANGLER_MAX_ROUTES_BYTES", str(cap))
    assert cli.main(["validate", "--routes", str(routes)]) == 1
    assert capsys.readouterr().err == over_cap(routes, cap) + "\n"
    monkeypatch.setenv("STRANGLER_MAX_ROUTES_BYTES", str(cap + 1))
    assert cli.main(["validate", "--routes", str(routes)]) == 0


@pytest.fixture
def worker_gc() -> Iterator[None]:
    """The collector as a serving worker tunes it: with the default thresholds, full collections
    triggered by the parse's allocations hold the GIL, and so the loop, for up to 0.2 s."""
    before = gc.get_threshold()
    gc.set_threshold(*server.GC_THRESHOLDS)
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("worker_gc")
async def test_the_loop_keeps_serving_while_a_large_table_reloads(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    write(state.settings.routes, large_table(LARGE))
    loop = asyncio.get_running_loop()
    started = loop.time()
    reloading = asyncio.create_task(reload_now(state))
    worst = 0.0  # the longest the loop took to come back to a 10 ms timer, beyond the 10 ms
    while not reloading.done():
        before = loop.time()
        await asyncio.sleep(0.01)
        worst = max(worst, loop.time() - before - 0.01)
    took = loop.time() - started
    assert await reloading is True
    assert len(state.table.routes) == LARGE + 4
    assert sample(state, "strangler_route_info", resource=f"r{LARGE - 1}", backend="drf") == 1.0
    assert took >= 0.5, f"the reload took {took:.2f} s: too small a table to show anything"
    assert worst < 0.25, f"the loop stalled {worst:.2f} s during a {took:.2f} s reload"


@dataclasses.dataclass
class Held:
    """The first reload's read: `parsed` once it has read and parsed, returns once `release`d."""

    parsed: threading.Event
    release: threading.Event


@pytest.fixture
def held_first_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    held = Held(threading.Event(), threading.Event())
    real = reload.load_table

    def load(*args: object) -> object:
        first = not held.parsed.is_set()
        try:
            return real(*args)  # type: ignore[arg-type]
        finally:
            if first:
                held.parsed.set()
                held.release.wait(10)

    monkeypatch.setattr(reload, "load_table", load)
    yield held
    held.release.set()


async def test_an_older_parse_never_replaces_a_newer_one(
    tmp_path: Path, held_first_read: Held
) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    write(state.settings.routes, FLIPPED)  # bookings: drf, read by the first reload...
    older = asyncio.create_task(reload_now(state))
    await asyncio.to_thread(held_first_read.parsed.wait, 10)
    newer_text = ROUTES.replace("tours: drf", "tours: legacy")
    write(state.settings.routes, newer_text)  # ...then the file changes and a second one starts
    assert await reload_now(state) is True
    held_first_read.release.set()  # the first one finishes last
    assert await older is True
    assert state.table.sha256 == make_state(state.settings.routes).table.sha256
    assert (on(state, "bookings"), on(state, "tours")) == ("legacy", "legacy")
    assert reloads(state, "success") == 1.0
    assert sample(state, "strangler_route_info", resource="bookings", backend="legacy") == 1.0


async def test_an_older_error_never_replaces_a_newer_table(
    tmp_path: Path, held_first_read: Held
) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    write(state.settings.routes, BROKEN)
    older = asyncio.create_task(reload_now(state))
    await asyncio.to_thread(held_first_read.parsed.wait, 10)
    write(state.settings.routes, FLIPPED)
    assert await reload_now(state) is True
    held_first_read.release.set()
    assert await older is False
    assert on(state, "bookings") == "drf"
    assert (state.last_reload_error, reloads(state, "failure"), last_success(state)) == (
        None,
        None,
        1.0,
    )


async def test_reload_on_request_reloads_each_time_it_is_asked(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    asked = asyncio.Event()  # what the server's SIGHUP handler sets
    task = asyncio.create_task(reload_on(asked, state))
    try:
        for text, backend in [(FLIPPED, "drf"), (ROUTES, "legacy")]:
            write(state.settings.routes, text)
            asked.set()
            await until(lambda backend=backend: on(state, "bookings") == backend)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
