"""`python -m bench fleet`: how fast one flip reaches every proxy replica through etcd.

Starts what `make fleet` starts for the proxies (the same `stack.services` command lines): a
real etcd (Debian's etcd-server) and three proxy replicas on it, on free loopback ports, in
front of two tiny upstreams that answer their own name ("legacy", "drf"). The store is seeded
with a one-resource table. Then, `--flips` times (50 by default), bookings is flipped to the
other upstream by the very code `strangler flip bookings <other> --store ...` runs
(`proxy.routing.store_edit.flip`: one compare-and-swap transaction), called in-process so that
the clock starts when etcd has committed the write, not after an interpreter's start and exit
(the CLI returns later still). From that moment each replica is asked for /bookings/1 every few
milliseconds until it answers with the new name. A flip's propagation is the time until the
last of the three routes the new way.

Reported: median and p99 (nearest rank: with 50 flips, the slowest) against the 250 ms p99
target, PASS or FAIL; results in bench/results/fleet.json.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy.routing import store_edit
from proxy.routing.store import RouteStore, parse_store_url
from stack.ports import free_port
from stack.runner import Stack
from stack.services import (
    DEFAULT_PORTS,
    FLEET_PORTS,
    FLEET_REPLICAS,
    StackConfig,
    etcd,
    proxy,
    seed,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_P99_MS = 250.0
RESOURCE = "bookings"
BACKENDS = ("legacy", "drf")
POLL_SECONDS = 0.002  # between two requests to one replica
GIVE_UP_SECONDS = 10.0  # a replica not routing the new way by then: the flip timed out
PROXY_ENV = {**os.environ, "STRANGLER_ACCESS_LOG": "0"}


@dataclass(frozen=True)
class Flip:
    """One flip: how long the write took, and when each replica routed the new way (ms after
    the write returned; None: not within GIVE_UP_SECONDS)."""

    to: str
    write_ms: float
    replicas_ms: tuple[float | None, ...]

    @property
    def propagation_ms(self) -> float | None:
        """Until the last replica routed the new way; None when one never did."""
        if any(ms is None for ms in self.replicas_ms):
            return None
        return max(ms for ms in self.replicas_ms if ms is not None)


@dataclass(frozen=True)
class Summary:
    flips: int
    timed_out: int
    median_ms: float
    p99_ms: float
    max_ms: float
    write_median_ms: float

    @property
    def passed(self) -> bool:
        return self.timed_out == 0 and self.p99_ms <= TARGET_P99_MS


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of them at or below.

    >>> percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5), percentile(list(map(float, range(50))), 0.99)
    (3.0, 49.0)
    """
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def summarize(flips: Sequence[Flip]) -> Summary:
    """Median, p99 and max propagation over the flips that reached every replica."""
    reached = [flip.propagation_ms for flip in flips if flip.propagation_ms is not None]
    if not reached:
        reached = [math.inf]
    return Summary(
        flips=len(flips),
        timed_out=sum(flip.propagation_ms is None for flip in flips),
        median_ms=statistics.median(reached),
        p99_ms=percentile(reached, 0.99),
        max_ms=max(reached),
        write_median_ms=statistics.median(flip.write_ms for flip in flips),
    )


def verdict(summary: Summary, replicas: int = FLEET_REPLICAS) -> str:
    """The figures against the target, and PASS or FAIL."""
    lines = [
        f"{summary.flips} flips, {replicas} replicas: propagation until every replica routes "
        f"the new way (from the moment the flip's etcd write returned)",
        f"  median {summary.median_ms:.1f} ms   p99 {summary.p99_ms:.1f} ms   "
        f"max {summary.max_ms:.1f} ms   (target p99 <= {TARGET_P99_MS:.0f} ms)",
        f"  the write itself (one etcd transaction): median {summary.write_median_ms:.1f} ms",
    ]
    if summary.timed_out:
        lines.append(
            f"  {summary.timed_out} flips did not reach every replica within "
            f"{GIVE_UP_SECONDS:.0f} s"
        )
    lines.append(f"fleet: {'PASS' if summary.passed else 'FAIL'}")
    return "\n".join(lines)


def routes_text() -> str:
    """The bench's table: both upstreams, bookings on legacy. The proxies' environment points
    the backends at the upstreams' ports (STRANGLER_BACKEND_<NAME>_URL, as `make fleet` does)."""
    return (
        "version: 1\n"
        "backends:\n"
        "  legacy:\n    url: http://127.0.0.1:5000\n"
        "  drf:\n    url: http://127.0.0.1:8000\n"
        "default: legacy\n"
        f"resources:\n  {RESOURCE}: legacy\n"
    )


def report(summary: Summary, flips: Sequence[Flip]) -> dict[str, object]:
    """The JSON written to bench/results/fleet.json."""
    return {
        "replicas": FLEET_REPLICAS,
        "target_p99_ms": TARGET_P99_MS,
        **asdict(summary),
        "passed": summary.passed,
        "flips_detail": [{**asdict(flip), "propagation_ms": flip.propagation_ms} for flip in flips],
    }


# --- the real run ------------------------------------------------------------------------------


async def upstream(name: str, port: int) -> web.AppRunner:
    """A server answering every request with its own name."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def routed_to(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text()


async def wait_for(
    session: aiohttp.ClientSession, url: str, backend: str, start: float
) -> float | None:
    """Ms from `start` until `url` is answered by `backend`; None after GIVE_UP_SECONDS."""
    while True:
        try:
            if await routed_to(session, url) == backend:
                return (time.perf_counter() - start) * 1000
        except aiohttp.ClientError:
            pass
        if time.perf_counter() - start > GIVE_UP_SECONDS:
            return None
        await asyncio.sleep(POLL_SECONDS)


async def flip(store: RouteStore, backend: str, number: int) -> float:
    """Flip bookings to `backend` as `strangler flip --store` does; the write's duration in ms."""
    started = time.perf_counter()
    by = store_edit.author(store, "bench", f"bench fleet, flip {number}")
    await store_edit.flip(store, RESOURCE, backend, by)
    return (time.perf_counter() - started) * 1000


async def measure(url: str, replicas: Sequence[str], flips: int) -> list[Flip]:
    results = []
    async with aiohttp.ClientSession() as session, RouteStore(parse_store_url(url)) as store:
        for replica in replicas:  # every replica serves the seeded table
            if await wait_for(session, replica, "legacy", time.perf_counter()) is None:
                raise RuntimeError(f"{replica} does not route {RESOURCE} to legacy")
        for number in range(flips):
            backend = BACKENDS[(number + 1) % 2]
            write_ms = await flip(store, backend, number)
            returned = time.perf_counter()
            waits = [wait_for(session, replica, backend, returned) for replica in replicas]
            results.append(Flip(backend, write_ms, tuple(await asyncio.gather(*waits))))
            await asyncio.sleep(0.05)
    return results


def bench_config(directory: Path) -> StackConfig:
    """The fleet on free loopback ports; data (etcd's, the replicas' caches) in `directory`."""
    ports = {key: free_port() for key in {**DEFAULT_PORTS, **FLEET_PORTS}}
    config = StackConfig(ports=ports, data_dir=directory, routes=directory / "routes.yaml")
    return config.fleet()


async def start_fleet(stack: Stack, config: StackConfig) -> list[str]:
    """etcd, the seeded table, the replicas; the URL of /bookings/1 on each replica."""
    await asyncio.to_thread(stack.start, etcd(config))
    config.routes.write_text(routes_text())
    seeded = await asyncio.create_subprocess_exec(
        *seed(config), stdout=asyncio.subprocess.DEVNULL, cwd=ROOT
    )
    if await seeded.wait() != 0:
        raise RuntimeError("seeding the store failed")
    replicas = [proxy(config, number) for number in range(1, FLEET_REPLICAS + 1)]
    for replica in replicas:
        await asyncio.to_thread(stack.start, replica)
    return [f"{replica.url}/{RESOURCE}/1" for replica in replicas]


async def run_async(flips: int, directory: Path) -> list[Flip]:
    config = bench_config(directory)
    runners = [await upstream(name, config.ports[name]) for name in BACKENDS]
    try:
        with Stack(cwd=ROOT, log_dir=directory / "logs", base_env=PROXY_ENV) as stack:
            urls = await start_fleet(stack, config)
            return await measure(str(config.store), urls, flips)
    finally:
        for runner in runners:
            await runner.cleanup()


def run(flips: int = 50) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as directory:
        results = asyncio.run(run_async(flips, Path(directory)))
    summary = summarize(results)
    print(verdict(summary))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fleet.json").write_text(json.dumps(report(summary, results), indent=2) + "\n")
    print(f"written: {RESULTS / 'fleet.json'}")
    return 0
