"""Shadow traffic: copy requests to a second backend, compare its answers with the live ones.

For a route with `shadow: {backend, percent, ignore, learn_noise, noise_after, writes}`,
`percent` of its GET and HEAD requests are copied (a GET carrying a body is not). Writes (POST,
PUT, PATCH, DELETE) are copied only with `writes: dry-run`, and then as dry runs: the copy
carries `X-Strangler-Shadow: dry-run` and an HMAC of the request under the shared secret
(`proxy.dryrun`, `Settings.shadow_secret`), which both gateways verify and pass on to the source
systems, where the write is performed in a transaction and rolled back. Nothing is stored twice.
A write's body is kept while it streams to the live backend (`KeptBody`, up to `body_cap`); a
body larger than that, or not read to its end, is not copied (counted as dropped). Without a
secret no write is copied (logged once per resource).

The client never waits for the shadow. While the live response streams to the client, a `Tee`
keeps its status, Content-Type, Location, Allow and body (up to `body_cap` bytes; past the cap
only a running SHA-256). Once the live exchange is complete, a small job goes on a bounded
per-process queue (`put_nowait`: when the queue is full, the copy is dropped and counted in
`strangler_shadow_dropped_total{resource}`). A fixed number of worker tasks take jobs, send the
copy through the process's own shadow connection pools (its own `Upstreams`, so shadow traffic
never takes a pooled connection from live traffic), read the answer the same way and compare
(`proxy.migration.diff`): `strangler_shadow_comparisons_total{resource,result}` counts match,
mismatch, noise (only declared or learned noise differs: not a match either) or error (the
shadow backend failed), and `strangler_shadow_mismatches_total{resource,class}` the class of each
difference found. The mismatches are kept (`proxy.migration.mismatches`) for `GET /-/diffs`.

Learned noise: `learn_noise` of the shadowed GETs are also sent a second time to the backend
that served them; what differs between two answers of the same backend is counted per path
(`proxy.migration.noise`), and once a path has differed `noise_after` times on its own, a
value difference on it is noise.

The copy is the live request's head as the live backend got it (same target, same Host, same
X-Request-ID), so `href`s built from the Host header agree. Mismatches and noise are kept per
process: with `--workers N`, each worker shares snapshots of its own (`proxy.observe.sharing`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from proxy import dryrun
from proxy.errors import ProxyError
from proxy.http.exchange import Headers, Response, UpstreamRequest
from proxy.http.messages import header_value
from proxy.http.pool import Upstreams
from proxy.http.streams import BodyStream
from proxy.migration.diff import GENERATED, Captured, Difference, classify, compare
from proxy.migration.fallback import KeptBody, stream_of
from proxy.migration.mismatches import Kept, Mismatch, recorded_headers, recorded_target
from proxy.migration.noise import NoiseBook
from proxy.observe.metrics import Metrics
from proxy.routing.jsonpath import NOTHING_IGNORED, Ignore
from proxy.routing.model import Backend, RouteTable, Shadow
from proxy.tasks import Tasks

SAFE_METHODS = frozenset({"GET", "HEAD"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_CAP = 1024 * 1024
QUEUE_SIZE = 256
WORKERS = 4
KEEP = 50
log = logging.getLogger("strangler.shadow")


class ShadowedRequest(Protocol):
    method: str
    target: bytes
    headers: Headers
    chunked: bool

    @property
    def body(self) -> BodyStream | None: ...


R = TypeVar("R", bound=ShadowedRequest)


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
        headers = response.headers
        return Captured(
            response.status,
            content_type(headers),
            None if self.chunks is None else b"".join(self.chunks),
            self.size,
            self.hash.hexdigest(),
            location=header_value(headers, b"location") or b"",
            allow=header_value(headers, b"allow") or b"",
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


def dry_run_head(head: bytes, secret: str, method: str, target: str, body: bytes) -> bytes:
    """`head` with the two signed dry-run headers added (`proxy.dryrun`)."""
    signed = dryrun.sign(secret, method, target, body, time.time())
    added = b"".join(b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in signed.items())
    return head[:-2] + added + b"\r\n"


@dataclass(frozen=True)
class Job:
    """A shadowed request waiting for its copy to be sent and compared."""

    resource: str
    shadow: Backend
    ignore: Ignore
    noise_after: int
    method: str
    target: str
    head: bytes
    chunked: bool
    request_id: str | None
    live: Captured = Captured(0, b"", b"", 0, "")
    backend: str = ""  # the live backend, once known
    primary: Backend | None = None  # asked again for learned noise
    body: bytes | None = None  # a dry-run write's body (None: no body to send)
    dry_run: bool = False


class Tee:
    """The live side of one shadowed request: `keep` its body, `feed` it the answer's body as it
    streams, then `finish`."""

    __slots__ = ("_shadows", "_job", "_learn", "_kept", "capture")

    def __init__(self, shadows: Shadows, job: Job, learn: bool) -> None:
        self._shadows = shadows
        self._job = job
        self._learn = learn
        self._kept: KeptBody | None = None
        self.capture = Capture(shadows.body_cap)

    def keep(self, body: BodyStream | None) -> BodyStream | None:
        """The body to send live: a write's is kept for its copy as it goes."""
        if body is None or not self._job.dry_run:
            return body
        self._kept = KeptBody(body, self._shadows.body_cap)
        return self._kept

    def feed(self, data: bytes) -> None:
        self.capture.feed(data)

    def finish(self, response: Response, backend: Backend) -> None:
        """The live response is complete: queue the comparison (or drop and count it)."""
        job = self._job
        body = job.body
        if self._kept is not None:
            if not self._kept.replayable:
                self._shadows.metrics.shadow_drop(job.resource)
                return
            body = self._kept.data
        live = self.capture.captured(response)
        primary = backend if self._learn else None
        self._shadows.submit(
            dataclasses.replace(job, backend=backend.name, live=live, primary=primary, body=body)
        )


@dataclass
class Shadows:
    """The process's shadow traffic: queue, workers, own connection pools, kept mismatches."""

    metrics: Metrics
    secret: str | None = None
    body_cap: int = BODY_CAP
    queue_size: int = QUEUE_SIZE
    workers: int = WORKERS
    keep: int = KEEP
    chance: Callable[[], float] = field(default_factory=lambda: random.Random().random)
    upstreams: Upstreams = field(default_factory=Upstreams)
    kept: Kept = field(init=False)
    noise: NoiseBook = field(default_factory=NoiseBook)
    _queue: asyncio.Queue[Job] = field(init=False)
    _tasks: Tasks = field(init=False, default_factory=lambda: Tasks(log))
    _ignores: dict[tuple[str, ...], Ignore] = field(default_factory=dict)
    _unsigned: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self.kept = Kept(self.keep)

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
        method = request.method
        if method in SAFE_METHODS:
            if request.body is not None:
                return None
        elif method not in WRITE_METHODS or not self._writes(resource, shadow):
            return None
        if shadow.percent < 100 and self.chance() * 100 >= shadow.percent:
            return None
        backend = table.backends[shadow.backend]
        request_head = head(request, backend)
        job = Job(
            resource,
            backend,
            self._ignore(shadow.ignore),
            shadow.noise_after,
            method,
            request.target.decode("latin-1"),
            request_head,
            request.chunked,
            head_field(request_head, b"x-request-id"),
            dry_run=method in WRITE_METHODS,
        )
        learn = method == "GET" and shadow.learn_noise > 0 and self.chance() < shadow.learn_noise
        return Tee(self, job, learn)

    def _writes(self, resource: str, shadow: Shadow) -> bool:
        """Whether this route's writes are copied: `writes: dry-run` and a secret to sign."""
        if not shadow.writes:
            return False
        if self.secret is None:
            if resource not in self._unsigned:
                self._unsigned.add(resource)
                log.warning("%s: writes are not shadowed: no STRANGLER_SHADOW_SECRET", resource)
            return False
        return True

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
        """Send the copy, compare, record; the result (match, mismatch, noise or error)."""
        if job.primary is not None:
            await self.learn(job, job.primary)
        try:
            shadow = await self.fetch(job, job.shadow)
        except ProxyError:
            self.metrics.shadow_result(job.resource, "error")
            return "error"
        kind = self.judge(job, shadow)
        result = "match" if kind is None else "noise" if kind == "noise" else "mismatch"
        self.metrics.shadow_result(job.resource, result, kind)
        return result

    def judge(self, job: Job, shadow: Captured) -> str | None:
        """Compare and keep one copy's answer; the class of its differences (None: a match)."""
        noise = self.noise.learned(job.resource, job.noise_after)
        generated = GENERATED if job.dry_run else NOTHING_IGNORED
        differences = compare(job.live, shadow, job.ignore, noise=noise, generated=generated)
        kind = classify(differences)
        if kind is not None:
            self.record(job, shadow, tuple(differences), kind)
        return kind

    async def learn(self, job: Job, primary: Backend) -> None:
        """Ask the primary again; count what differs between its two answers as noise."""
        try:
            again = await self.fetch(job, primary)
        except ProxyError:
            return
        self.noise.observe(job.resource, compare(job.live, again))

    async def fetch(self, job: Job, backend: Backend) -> Captured:
        request = self.upstream_request(job)
        exchange = await self.upstreams.send(backend, request)
        capture = Capture(self.body_cap)
        try:
            while chunk := await exchange.response.body.read():
                capture.feed(chunk)
        except BaseException:
            exchange.abort()
            raise
        exchange.release()
        return capture.captured(exchange.response)

    def upstream_request(self, job: Job) -> UpstreamRequest:
        """The copy as sent: a write signed as a dry run, with its kept body."""
        if not job.dry_run or self.secret is None:
            return UpstreamRequest(job.method, job.head, None, False, True)
        sent = job.body or b""
        head = dry_run_head(job.head, self.secret, job.method, job.target, sent)
        body = stream_of(sent) if sent else None
        return UpstreamRequest(job.method, head, body, job.chunked, False)

    def record(
        self, job: Job, shadow: Captured, differences: tuple[Difference, ...], kind: str
    ) -> None:
        self.kept.add(
            Mismatch(
                time.time(),
                job.resource,
                job.method,
                recorded_target(job.target),
                job.request_id,
                job.backend,
                job.shadow.name,
                job.live.status,
                shadow.status,
                differences,
                kind,
                job.dry_run,
                recorded_headers(job.head),
                job.body or b"",
                job.live.content_type.decode("latin-1"),
                job.live.body,
            )
        )

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every resource's kept mismatches as JSON, newest first: what workers share."""
        return self.kept.snapshot()
