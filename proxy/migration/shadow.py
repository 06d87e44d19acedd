"""Shadow traffic: copy safe requests to a second backend, compare its answers with the live ones.

For a route with `shadow: {backend, percent, ignore}`, `percent` of its GET and HEAD requests
are copied. Only these safe methods: both gateways write to the same source systems, so a
shadowed POST, PUT, PATCH or DELETE would be applied twice (two bookings instead of one). A GET
carrying a body is not copied either (the body was streamed to the live backend, not kept).

The client never waits for the shadow. While the live response streams to the client, a `Tee`
keeps its status, Content-Type and body (up to `body_cap` bytes; past the cap only a running
SHA-256). Once the live exchange is complete, a small job goes on a bounded per-process queue
(`put_nowait`: when the queue is full, the copy is dropped and counted in
`strangler_shadow_dropped_total{resource}`). A fixed number of worker tasks take jobs, send the
copy through the process's own shadow connection pools (its own `Upstreams`, so shadow traffic
never takes a pooled connection from live traffic, and at most `workers` connections per shadow
backend), read the answer the same way, compare (`proxy.migration.diff`) and count
`strangler_shadow_comparisons_total{resource,result}`: match, mismatch, or error (the shadow
backend was unreachable, timed out, or broke the connection). The last `keep` mismatches per
resource are kept for `GET /-/diffs` and `strangler diffs` (the report: `proxy.control.diffs`).

The copy is the live request's head as the live backend got it (same target, same Host, same
X-Request-ID), so `href`s built from the Host header agree. Mismatches are kept per process:
with `--workers N`, each worker shares a snapshot of its own (`proxy.observe.sharing`).

This module owns the shadow step of the request path (`Shadows.tee`: a `Tee` the forwarder feeds
and finishes) and the comparison workers behind it, started and stopped with `Shadows.start` and
`Shadows.close`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from proxy.clock import iso_time
from proxy.errors import ProxyError
from proxy.http.exchange import Headers, Response, UpstreamRequest
from proxy.http.messages import header_value
from proxy.http.pool import Upstreams
from proxy.http.streams import BodyStream
from proxy.migration.diff import Captured, Difference, compare
from proxy.observe.metrics import Metrics
from proxy.routing.jsonpath import Ignore
from proxy.routing.model import Backend, RouteTable, Shadow
from proxy.tasks import Tasks

SAFE_METHODS = frozenset({"GET", "HEAD"})
BODY_CAP = 1024 * 1024
QUEUE_SIZE = 256
WORKERS = 4
KEEP = 50
log = logging.getLogger("strangler.shadow")


class ShadowedRequest(Protocol):
    method: str
    target: bytes
    headers: Headers

    @property
    def body(self) -> BodyStream | None: ...


R = TypeVar("R", bound=ShadowedRequest)


@dataclass(frozen=True)
class Mismatch:
    """One compared request whose shadow answer differed."""

    time: float
    resource: str
    method: str
    target: str
    request_id: str | None
    backend: str
    shadow_backend: str
    live_status: int
    shadow_status: int
    differences: tuple[Difference, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "time": iso_time(self.time),
            "resource": self.resource,
            "method": self.method,
            "path": self.target,
            "request_id": self.request_id,
            "backend": self.backend,
            "shadow_backend": self.shadow_backend,
            "live_status": self.live_status,
            "shadow_status": self.shadow_status,
            "differences": [difference.to_json() for difference in self.differences],
        }


class Capture:
    """A body seen chunk by chunk: kept whole up to `cap` bytes, hashed throughout."""

    __slots__ = ("cap", "chunks", "size", "hash")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] | None = []
        self.size = 0
        self.hash = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        if self.chunks is not None:
            if self.size > self.cap:
                self.chunks = None
            else:
                self.chunks.append(data)

    def captured(self, response: Response) -> Captured:
        body = None if self.chunks is None else b"".join(self.chunks)
        return Captured(
            response.status,
            content_type(response.headers),
            body,
            self.size,
            self.hash.hexdigest(),
        )


def content_type(headers: Headers) -> bytes:
    return header_value(headers, b"content-type") or b""


def head_field(head: bytes, name: bytes) -> str | None:
    r"""The first value of header `name` (lower case) in a request head, if any.

    >>> head_field(b"GET / HTTP/1.1\r\nX-Request-ID: 7f\r\n\r\n", b"x-request-id")
    '7f'
    """
    start = head.lower().find(b"\r\n" + name + b":")
    if start == -1:
        return None
    start += len(name) + 3
    return head[start : head.index(b"\r\n", start)].strip().decode("latin-1")


@dataclass(frozen=True)
class Job:
    """A shadowed request waiting for its copy to be sent and compared."""

    resource: str
    backend: str
    shadow: Backend
    ignore: Ignore
    method: str
    target: str
    head: bytes
    request_id: str | None
    live: Captured


NOT_YET = Captured(0, b"", b"", 0, "")


class Tee:
    """The live side of one shadowed request: feed it the body as it streams, then `finish`."""

    __slots__ = ("_shadows", "_job", "capture")

    def __init__(self, shadows: Shadows, job: Job) -> None:
        self._shadows = shadows
        self._job = job
        self.capture = Capture(shadows.body_cap)

    def feed(self, data: bytes) -> None:
        self.capture.feed(data)

    def finish(self, response: Response, backend: str) -> None:
        """The live response is complete: queue the comparison (or drop and count it)."""
        live = self.capture.captured(response)
        self._shadows.submit(dataclasses.replace(self._job, backend=backend, live=live))


@dataclass
class Shadows:
    """The process's shadow traffic: queue, workers, own connection pools, kept mismatches."""

    metrics: Metrics
    body_cap: int = BODY_CAP
    queue_size: int = QUEUE_SIZE
    workers: int = WORKERS
    keep: int = KEEP
    chance: Callable[[], float] = field(default_factory=lambda: random.Random().random)
    upstreams: Upstreams = field(default_factory=Upstreams)
    mismatches: dict[str, deque[Mismatch]] = field(default_factory=dict)
    _queue: asyncio.Queue[Job] = field(init=False)
    _tasks: Tasks = field(init=False, default_factory=lambda: Tasks(log))
    _ignores: dict[tuple[str, ...], Ignore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)

    # -- the live side (runs on the hot path of shadowed routes only) -------------------------

    def tee(
        self,
        table: RouteTable,
        resource: str,
        shadow: Shadow,
        request: R,
        head: Callable[[R, Backend], bytes],
    ) -> Tee | None:
        """A Tee when this request is to be shadowed, else None."""
        if request.method not in SAFE_METHODS or request.body is not None:
            return None
        if shadow.percent < 100 and self.chance() * 100 >= shadow.percent:
            return None
        backend = table.backends[shadow.backend]
        request_head = head(request, backend)
        job = Job(
            resource,
            "",
            backend,
            self._ignore(shadow.ignore),
            request.method,
            request.target.decode("latin-1"),
            request_head,
            head_field(request_head, b"x-request-id"),
            NOT_YET,
        )
        return Tee(self, job)

    def submit(self, job: Job) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.metrics.shadow_drop(job.resource)

    def _ignore(self, paths: tuple[str, ...]) -> Ignore:
        """Compiled once per distinct ignore list (routes.yaml validated the paths)."""
        ignore = self._ignores.get(paths)
        if ignore is None:
            ignore = self._ignores[paths] = Ignore.compile(paths)
        return ignore

    # -- the workers --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the `workers` comparison tasks (this object owns them until `close`)."""
        for number in range(self.workers):
            self._tasks.start(self._work(), f"shadow worker {number}")

    async def close(self) -> None:
        """Stop the workers (queued copies are dropped) and close the shadow pools."""
        await self._tasks.close()
        self.upstreams.close()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.run(job)
            except Exception:
                log.exception("shadow comparison failed")
            finally:
                self._queue.task_done()

    async def run(self, job: Job) -> str:
        """Send the copy, compare, record; the result (match, mismatch or error)."""
        try:
            shadow = await self.fetch(job)
        except ProxyError:
            result = "error"
        else:
            differences = compare(job.live, shadow, job.ignore)
            result = "mismatch" if differences else "match"
            if differences:
                self.record(job, shadow, differences)
        self.metrics.shadow_result(job.resource, result)
        return result

    async def fetch(self, job: Job) -> Captured:
        request = UpstreamRequest(job.method, job.head, None, False, True)
        exchange = await self.upstreams.send(job.shadow, request)
        capture = Capture(self.body_cap)
        try:
            while chunk := await exchange.response.body.read():
                capture.feed(chunk)
        except BaseException:
            exchange.abort()
            raise
        exchange.release()
        return capture.captured(exchange.response)

    def record(self, job: Job, shadow: Captured, differences: list[Difference]) -> None:
        kept = self.mismatches.get(job.resource)
        if kept is None:
            kept = self.mismatches[job.resource] = deque(maxlen=self.keep)
        kept.append(
            Mismatch(
                time.time(),
                job.resource,
                job.method,
                job.target,
                job.request_id,
                job.backend,
                job.shadow.name,
                job.live.status,
                shadow.status,
                tuple(differences),
            )
        )

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every resource's kept mismatches as JSON, newest first: what workers share."""
        return {
            resource: [mismatch.to_json() for mismatch in reversed(kept)]
            for resource, kept in self.mismatches.items()
        }
