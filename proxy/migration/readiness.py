"""Is the new stack ready to take a resource over? A pure verdict over the evidence.

The evidence (`Evidence`) is what the proxy counted for the resource over one window: shadow
comparisons and matches, the fallback debt shapes recorded, and the requests, 5xx answers and
p99 of the new backend and of the old one (the table's default) for that resource. Each check
is "ok", "fail" or "skip" (nothing to judge):

    new backend  the entry names a backend other than the default (else fail)
    shadow       skip without comparisons; else at least `min_requests` of them, and a match
                 rate of at least `min_match`
    debt         no debt shape recorded for the resource
    errors       skip when the new backend served none of the resource's requests; else at
                 least `min_requests`, and its 5xx rate at most `max_error_delta` above the old
                 one's (0% when the old one served none)
    latency      skip as errors, and when the old backend served none; else the new p99 at
                 most `max_p99_ratio` times the old p99
    evidence     fail when neither shadow nor errors was judged ok: nothing proves it

Ready: no check failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_REQUESTS = 200
MIN_MATCH = 0.995  # shadow match rate
MAX_ERROR_DELTA = 0.005  # new 5xx rate minus old 5xx rate (0.005: half a point)
MAX_P99_RATIO = 1.5  # new p99 / old p99


@dataclass(frozen=True)
class Criteria:
    min_requests: int = MIN_REQUESTS
    min_match: float = MIN_MATCH
    max_error_delta: float = MAX_ERROR_DELTA
    max_p99_ratio: float = MAX_P99_RATIO


@dataclass(frozen=True)
class BackendEvidence:
    """One backend's answers to the resource's requests in the window."""

    backend: str | None
    requests: float = 0.0
    errors: float = 0.0  # 5xx
    p99_seconds: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Evidence:
    resource: str
    stage: str  # `Stage.text`
    window_seconds: float
    comparisons: float  # shadow comparisons: match + mismatch + error
    matches: float
    debt_shapes: int
    new: BackendEvidence
    old: BackendEvidence

    @property
    def match_rate(self) -> float | None:
        return self.matches / self.comparisons if self.comparisons > 0 else None


@dataclass(frozen=True)
class Check:
    name: str
    result: str  # ok, fail or skip
    text: str


@dataclass(frozen=True)
class Verdict:
    ready: bool
    checks: tuple[Check, ...]


def verdict(evidence: Evidence, criteria: Criteria = Criteria()) -> Verdict:
    checks = [
        _backend(evidence),
        _shadow(evidence, criteria),
        _debt(evidence),
        _errors(evidence, criteria),
        _latency(evidence, criteria),
    ]
    if not any(c.result == "ok" for c in checks if c.name in ("shadow", "errors")):
        text = "neither enough shadow comparisons nor new-stack requests to judge"
        checks.append(Check("evidence", "fail", text))
    return Verdict(all(check.result != "fail" for check in checks), tuple(checks))


def _backend(evidence: Evidence) -> Check:
    name = evidence.new.backend
    if name is None:
        return Check("new backend", "fail", "the entry names no backend but the default")
    return Check("new backend", "ok", f"{name} against {evidence.old.backend}")


def _shadow(evidence: Evidence, criteria: Criteria) -> Check:
    compared, rate = evidence.comparisons, evidence.match_rate
    if rate is None:
        return Check("shadow", "skip", "no shadow comparison")
    text = f"{compared:,.0f} comparisons, {percent(rate, 2)} match"
    if compared < criteria.min_requests:
        return Check("shadow", "fail", f"{text}: fewer than {criteria.min_requests:,}")
    if rate < criteria.min_match:
        return Check("shadow", "fail", f"{text}: under {percent(criteria.min_match, 2)}")
    return Check("shadow", "ok", text)


def _debt(evidence: Evidence) -> Check:
    shapes = evidence.debt_shapes
    if shapes:
        return Check("debt", "fail", f"{shapes} request shape(s) needed a fallback")
    return Check("debt", "ok", "no request shape needed a fallback")


def _errors(evidence: Evidence, criteria: Criteria) -> Check:
    new, old = evidence.new, evidence.old
    if new.error_rate is None:
        return Check("errors", "skip", "no request served by the new backend")
    old_rate = old.error_rate or 0.0
    text = f"{new.requests:,.0f} requests, 5xx {percent(new.error_rate)} vs {percent(old_rate)}"
    if new.requests < criteria.min_requests:
        return Check("errors", "fail", f"{text}: fewer than {criteria.min_requests:,} requests")
    if new.error_rate - old_rate > criteria.max_error_delta:
        limit = f"{criteria.max_error_delta * 100:g} points"
        return Check("errors", "fail", f"{text}: more than {limit} above")
    return Check("errors", "ok", text)


def _latency(evidence: Evidence, criteria: Criteria) -> Check:
    new, old = evidence.new, evidence.old
    if new.p99_seconds is None or new.requests < criteria.min_requests:
        return Check("latency", "skip", "not enough requests served by the new backend")
    if old.p99_seconds is None or old.p99_seconds <= 0:
        return Check("latency", "skip", f"p99 {ms(new.p99_seconds)}; no old-stack baseline")
    text = f"p99 {ms(new.p99_seconds)} vs {ms(old.p99_seconds)}"
    if new.p99_seconds > criteria.max_p99_ratio * old.p99_seconds:
        return Check("latency", "fail", f"{text}: over {criteria.max_p99_ratio:g}x")
    return Check("latency", "ok", text)


def percent(rate: float, digits: int = 1) -> str:
    return f"{rate:.{digits}%}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def verdict_json(evidence: Evidence, result: Verdict, criteria: Criteria) -> dict[str, Any]:
    """What GET /-/ready/{resource} answers and the dashboard shows."""

    def side(figures: BackendEvidence) -> dict[str, Any]:
        return {
            "backend": figures.backend,
            "requests": figures.requests,
            "errors": figures.errors,
            "error_rate": figures.error_rate,
            "p99_seconds": figures.p99_seconds,
        }

    return {
        "resource": evidence.resource,
        "stage": evidence.stage,
        "ready": result.ready,
        "window_seconds": evidence.window_seconds,
        "criteria": {
            "min_requests": criteria.min_requests,
            "min_match": criteria.min_match,
            "max_error_delta": criteria.max_error_delta,
            "max_p99_ratio": criteria.max_p99_ratio,
        },
        "shadow": {
            "comparisons": evidence.comparisons,
            "matches": evidence.matches,
            "match_rate": evidence.match_rate,
        },
        "debt_shapes": evidence.debt_shapes,
        "new": side(evidence.new),
        "old": side(evidence.old),
        "checks": [
            {"name": check.name, "result": check.result, "text": check.text}
            for check in result.checks
        ],
    }
