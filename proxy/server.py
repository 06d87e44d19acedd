"""`serve(settings)`: the proxy process (or its workers) from start to a clean exit.

One worker serves the public port (`proxy.dataplane.listener`), the admin port
(`proxy.control.admin`), watches the routes file (`proxy.routing.reload`) and reloads on SIGHUP.
This module wires them: `build_state` makes what the process holds, whole, before it serves, and
`run_worker` starts and stops the rest. On SIGTERM it stops accepting, reports not
ready, lets in-flight requests finish within `Settings.drain_seconds` and exits 0.

With `workers > 1` this process only supervises: it sets PROMETHEUS_MULTIPROC_DIR to a fresh
directory and starts the workers as fresh interpreters (so prometheus_client is imported after the
variable is set), each binding the public and admin ports with SO_REUSEPORT; /metrics of any worker
then sums over all of them.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.routing.model import RoutesError, RouteTable
from proxy.routing.parser import load_table
from proxy.settings import MULTIPROC_ENV, Settings

if TYPE_CHECKING:
    from proxy.state import ProxyState

WORKER_SETTINGS = "STRANGLER_WORKER_SETTINGS"
SUPERVISOR_PID = "STRANGLER_SUPERVISOR_PID"  # a worker's parent, as the supervisor started it
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)
# Collections rarer than the defaults: less CPU per request, and a routes reload parsing in a
# thread does not trigger full collections that hold the GIL (and so the loop) for 0.2 s.
GC_THRESHOLDS = (50_000, 20, 100)
# glibc's mallopt parameters (<malloc.h>) and what `keep_heap` sets them to.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 1 << 20  # blocks under 1 MiB come from the heap, not an mmap each
HEAP_TRIM_THRESHOLD = 8 << 20  # free bytes at the heap's top kept before it shrinks
log = logging.getLogger("strangler.server")


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean drain, 1 when the routes file is bad at start.

    With a store (`settings.store`) the table comes from it, read by each worker as it starts
    (`proxy.control.fleet`), and routes.yaml is not read.
    """
    table = None
    try:
        if settings.store is None:
            table = load_table(settings.routes, max_bytes=settings.max_routes_bytes)
    except RoutesError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{settings.routes}: {exc.strerror}", file=sys.stderr)
        return 1
    if settings.workers > 1:
        return supervise(settings)
    return run(run_worker(settings, table, reuse_port=False))


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (about a quarter less CPU per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def keep_heap() -> None:
    """Keep the memory of freed body chunks in the process (glibc; elsewhere nothing changes).

    Streaming a body allocates and frees a 256 KB bytes object per read (uvloop's read size).
    With glibc's adaptive defaults (trim above twice the largest block freed so far) the heap's
    top went back to the kernel and was taken again for the next chunks, every page faulted in
    and zeroed anew: 160 000 page faults and about twice the CPU per GiB streamed, depending on
    how many chunks happened to be alive at once. The cost: up to HEAP_TRIM_THRESHOLD bytes of
    freed memory stay in the process.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)


def follow_supervisor(supervisor: int) -> bool:
    """Have the kernel send this worker SIGTERM (a drain, then exit) when its supervisor dies;
    False when it is gone already.

    Without it, a supervisor killed outright (SIGKILL, the OOM killer) would leave its workers
    serving on: with SO_REUSEPORT a restarted proxy's new workers would then share the port
    with them, and some requests would keep meeting the old processes.
    """
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        pass  # not glibc/Linux: the supervisor's own exit path still stops its workers
    else:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    # The supervisor may have died before prctl: then this process has another parent already.
    return os.getppid() == supervisor


def build_state(settings: Settings, table: RouteTable) -> ProxyState:
    """Everything one serving process holds for its lifetime, built whole before it serves."""
    from prometheus_client import CollectorRegistry

    from proxy.migration.shadow import Shadows
    from proxy.observe.metrics import Metrics
    from proxy.state import ProxyState

    registry = CollectorRegistry()
    metrics = Metrics(
        registry,
        multiprocess=settings.shared_directory is not None,
        store=settings.store is not None,
    )
    metrics.routes_loaded(table)
    return ProxyState(
        settings,
        table,
        metrics,
        registry,
        time.time(),
        shadows=Shadows(metrics, settings.shadow_secret),
    )


async def run_worker(settings: Settings, table: RouteTable | None, *, reuse_port: bool) -> int:
    """One serving process: listeners, reload watcher (or store watch), signal handlers, drain.

    `table` None: take it from the store (1 when neither the store nor the cache can give one).
    """
    from proxy.control.admin import make_admin_app
    from proxy.control.autopilot import Autopilot, run_autopilot
    from proxy.control.fleet import Fleet, store_tasks
    from proxy.control.fleet_start import FleetError, open_store
    from proxy.control.rollback import GuardTimer, run_guards
    from proxy.dataplane.forward import Forwarder
    from proxy.dataplane.listener import Listener
    from proxy.http.batch import WriteBatch
    from proxy.http.pool import Upstreams
    from proxy.observe.accesslog import AccessLog
    from proxy.observe.metrics import flush_periodically
    from proxy.observe.sharing import DEBT, MISMATCHES, NOISE, share_periodically
    from proxy.routing.reload import reload_now, reload_on, watch_routes
    from proxy.tasks import Tasks

    directory = settings.shared_directory  # several workers: their metric values and snapshots
    start = None
    if table is None:
        try:
            start = await open_store(settings)
        except FleetError as exc:
            print(f"strangler serve: {exc}", file=sys.stderr)
            return 1
        table = start.table
    state = build_state(settings, table)
    fleet = None if start is None else Fleet.of(state, start)
    shadows = state.shadows
    assert shadows is not None
    shadows.start()
    batch = WriteBatch()  # the client and upstream writes of a loop pass leave together
    upstreams = Upstreams(batch, settings.max_response_head)
    access_log = AccessLog(sys.stdout)
    listener = Listener(Forwarder(state, upstreams, access_log), batch)
    loop = asyncio.get_running_loop()
    public = await loop.create_server(
        listener.protocol, settings.host, settings.port, reuse_port=reuse_port, backlog=1024
    )
    admin = make_admin_app(state, fleet=fleet)
    runner = web.AppRunner(admin, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(
        runner, settings.admin_host, settings.admin_port, reuse_port=reuse_port
    ).start()
    background = Tasks(log)  # every task of the process: started here, cancelled at the end
    hangup = asyncio.Event()  # set by SIGHUP: the reload itself runs in a task, off the handler
    if fleet is None:
        background.start(watch_routes(state), "routes watcher")
        background.start(reload_on(hangup, state), "SIGHUP reload")
    else:  # the store's watch, the replica's lease, a re-read on SIGHUP
        store_tasks(background, fleet, hangup)
    timer = GuardTimer(
        state.guards,
        settings.routes,
        state.metrics,
        table=lambda: state.table,
        reload=(lambda: reload_now(state)) if fleet is None else fleet.refresh,
        draining=lambda: state.draining,
        store=fleet,
    )
    background.start(run_guards(timer), "guard timer")
    pilot = Autopilot(
        settings.routes,
        state.metrics,
        state.registry,
        table=lambda: state.table,
        reload=timer.reload,
        draining=lambda: state.draining,
        directory=directory,
        store=None if fleet is None else fleet.store,
        fleet=fleet,
        group=settings.replica_id,
    )
    every = settings.rollout_evaluate_every
    background.start(run_autopilot(pilot, every=every), "rollout autopilot")
    if directory is not None:  # several workers: what the others' admin endpoints read of this one
        snapshots = {
            DEBT: state.debt.snapshot,
            MISMATCHES: shadows.snapshot,
            NOISE: shadows.noise.snapshot,
        }
        background.start(flush_periodically(state.metrics), "metrics flush")
        receivers = {NOISE: shadows.noise.share}  # each worker's noise learned from all samples
        background.start(
            share_periodically(directory, snapshots, receivers=receivers), "worker snapshots"
        )
    # What exists now lives as long as the process: keep it out of every collection, and collect
    # the young generation less often (requests make short-lived, acyclic garbage): ~10% less CPU.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    keep_heap()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hangup.set)
    try:
        await stop.wait()
        state.draining = True
        public.close()
        listener.close_idle()
        if not await listener.wait_idle(settings.drain_seconds):
            log.warning(
                "drain: %d connections cut after %ss",
                len(listener.connections),
                settings.drain_seconds,
            )
            for conn in list(listener.connections):
                conn.abort()
    finally:
        await background.close()
        if fleet is not None:
            await fleet.close()
        await runner.cleanup()
        access_log.flush()
        await shadows.close()
        upstreams.close()
        state.metrics.flush()  # the last requests' counts, for the other workers' /metrics
    return 0


def supervise(settings: Settings) -> int:
    """Start `settings.workers` worker processes; forward signals; 0 when all exited cleanly."""
    metrics_dir = tempfile.mkdtemp(prefix="strangler-metrics-")
    worker_settings = dataclasses.replace(settings, shared_directory=Path(metrics_dir))
    env = {
        **os.environ,
        MULTIPROC_ENV: metrics_dir,
        WORKER_SETTINGS: worker_settings.to_json(),
        SUPERVISOR_PID: str(os.getpid()),
    }
    command = [sys.executable, "-m", "proxy.server"]
    workers = [subprocess.Popen(command, env=env) for _ in range(settings.workers)]
    stopping = failed = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGTERM, signal.SIGINT)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {
        sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    try:
        while any(worker.poll() is None for worker in workers):
            if not stopping and any(worker.poll() is not None for worker in workers):
                log.error("a worker exited; stopping the others")
                failed = True
                forward(signal.SIGTERM, None)
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    # A worker still starting up when SIGTERM came had nothing in flight: its -SIGTERM is clean.
    clean_codes = (0, -signal.SIGTERM)
    clean = not failed and all(worker.returncode in clean_codes for worker in workers)
    return 0 if clean else 1


def worker_main() -> int:
    """Entry point of a worker process started by `supervise`."""
    supervisor = os.environ.get(SUPERVISOR_PID)
    if supervisor is not None and not follow_supervisor(int(supervisor)):
        print("worker: the supervisor is gone", file=sys.stderr)
        return 1
    settings = Settings.from_json(os.environ[WORKER_SETTINGS])
    try:
        table = None  # with a store, read from it by run_worker
        if settings.store is None:
            table = load_table(Path(settings.routes), max_bytes=settings.max_routes_bytes)
    except (RoutesError, OSError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 1
    return run(run_worker(settings, table, reuse_port=True))


if __name__ == "__main__":
    sys.exit(worker_main())
