"""The end of a request: its `Outcome`, and the observers told of it.

When a request has been answered (or failed with an answer of the proxy's own), the forwarder
calls `request_done` on each of its observers, in order: the request metrics, the guard's windows,
the access log. A new thing to learn from every request is a new observer here, not an edit of
the forwarder. Observers run on the hot path: each is one call, no I/O (the access log batches
its lines).
"""

from __future__ import annotations

from proxy.http.messages import Request
from proxy.migration.canary import CANARY, FORCED, ROUTED
from proxy.migration.guard import Guards
from proxy.observe.accesslog import AccessLog, client
from proxy.observe.metrics import Metrics
from proxy.routing.model import Backend


class Outcome:
    """How a request was answered: for metrics, the access log and observers.

    A plain class, not a dataclass: mypyc compiles its `__init__` (proxy/speedups.py).
    """

    __slots__ = (
        "backend", "via", "status", "keep_alive", "bytes_out", "fallback_from", "shadow",
        "switched",
    )  # fmt: skip

    def __init__(self, backend: Backend, via: str = ROUTED) -> None:
        self.backend = backend  # the backend whose answer the client got (or was to get)
        self.via = via  # canary.ROUTED, CANARY (the canary share), PINNED or FORCED (a tester)
        self.status = 0  # 0: no answer was sent
        self.keep_alive = False
        self.bytes_out = 0  # response body bytes sent to the client
        self.fallback_from: str | None = None  # the backend whose answer a fallback replaced
        self.shadow = False  # a copy may go to a shadow backend
        # perf_counter() when a 101 went out: the request's duration ends there
        self.switched = 0.0


class Observer:
    """Told of every answered request, once, after its last byte went out.

    A base class rather than a Protocol: compiled, a call through a base class is a direct call,
    through a Protocol a lookup by name (for every observer of every request).
    """

    __slots__ = ()

    def request_done(
        self, request: Request, resource: str, outcome: Outcome, seconds: float
    ) -> None:
        raise NotImplementedError


class RequestMetrics(Observer):
    """`strangler_requests_total` and `strangler_request_duration_seconds`."""

    __slots__ = ("_counts",)

    def __init__(self, metrics: Metrics) -> None:
        self._counts = metrics.counts

    def request_done(
        self, request: Request, resource: str, outcome: Outcome, seconds: float
    ) -> None:
        self._counts.request_done(
            resource, outcome.backend.name, request.method, outcome.status, seconds
        )


class GuardWindows(Observer):
    """The guard's rolling windows of statuses and durations, per resource and backend (and
    whether the canary share sent the request: a canary's side against its baseline)."""

    __slots__ = ("_guards",)

    def __init__(self, guards: Guards) -> None:
        self._guards = guards

    def request_done(
        self, request: Request, resource: str, outcome: Outcome, seconds: float
    ) -> None:
        via_canary = outcome.via == CANARY
        self._guards.observe(resource, outcome.backend.name, outcome.status, seconds, via_canary)


class AccessLogLines(Observer):
    """One access-log line per request (secrets only as digests: `proxy.observe.accesslog`)."""

    __slots__ = ("_log",)

    def __init__(self, log: AccessLog) -> None:
        self._log = log

    def request_done(
        self, request: Request, resource: str, outcome: Outcome, seconds: float
    ) -> None:
        self._log.request(
            request.request_id.decode("latin-1"),
            request.method,
            request.path,
            resource,
            outcome.backend.name,
            outcome.status,
            seconds,
            0 if request.body is None else request.body.total,
            outcome.bytes_out,
            outcome.via == CANARY,
            outcome.via == FORCED,
            outcome.fallback_from,
            outcome.shadow,
            client(request.headers),
        )


def standard_observers(
    metrics: Metrics, guards: Guards, log: AccessLog | None
) -> tuple[Observer, ...]:
    """The observers every proxy process has; `log` None: no access log."""
    observers: list[Observer] = [RequestMetrics(metrics), GuardWindows(guards)]
    if log is not None:
        observers.append(AccessLogLines(log))
    return tuple(observers)
