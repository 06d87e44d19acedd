"""proxy.migration.readiness: the verdict over evidence, as a parametrized table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.migration.readiness import (
    BackendEvidence,
    Check,
    Criteria,
    Evidence,
    verdict,
    verdict_json,
)

NO_NEW = BackendEvidence("drf")
OLD = BackendEvidence("legacy", 1000, 2, 0.040)  # 0.2% 5xx, p99 40 ms
SHADOWED = Evidence("bookings", "shadow", 300.0, 400, 399, 0, NO_NEW, BackendEvidence("legacy"))
CANARY = Evidence(
    "bookings", "canary 25%", 300.0, 0, 0, 0, BackendEvidence("drf", 250, 1, 0.05), OLD
)


DEFAULT = Criteria()


def results(evidence: Evidence, criteria: Criteria = DEFAULT) -> dict[str, str]:
    return {check.name: check.result for check in verdict(evidence, criteria).checks}


def test_shadow_evidence_alone_is_ready() -> None:
    result = verdict(SHADOWED)
    assert result.ready
    assert result.checks == (
        Check("new backend", "ok", "drf against legacy"),
        Check("shadow", "ok", "400 comparisons, 99.75% match"),
        Check("debt", "ok", "no request shape needed a fallback"),
        Check("errors", "skip", "no request served by the new backend"),
        Check("latency", "skip", "not enough requests served by the new backend"),
    )


def test_canary_evidence_alone_is_ready() -> None:
    result = verdict(CANARY)
    assert result.ready
    assert result.checks[1:] == (
        Check("shadow", "skip", "no shadow comparison"),
        Check("debt", "ok", "no request shape needed a fallback"),
        Check("errors", "ok", "250 requests, 5xx 0.4% vs 0.2%"),
        Check("latency", "ok", "p99 50 ms vs 40 ms"),
    )


@pytest.mark.parametrize(
    ("evidence", "failed", "text"),
    [
        (replace(SHADOWED, comparisons=150, matches=150), "shadow",
         "150 comparisons, 100.00% match: fewer than 200"),
        (replace(SHADOWED, matches=390), "shadow", "400 comparisons, 97.50% match: under 99.50%"),
        (replace(SHADOWED, debt_shapes=2), "debt", "2 request shape(s) needed a fallback"),
        (replace(CANARY, new=BackendEvidence("drf", 199, 0, 0.01)), "errors",
         "199 requests, 5xx 0.0% vs 0.2%: fewer than 200 requests"),
        (replace(CANARY, new=BackendEvidence("drf", 1000, 8, 0.01)), "errors",
         "1,000 requests, 5xx 0.8% vs 0.2%: more than 0.5 points above"),
        (replace(CANARY, new=BackendEvidence("drf", 1000, 0, 0.061)), "latency",
         "p99 61 ms vs 40 ms: over 1.5x"),
        (replace(CANARY, new=BackendEvidence(None)), "new backend",
         "the entry names no backend but the default"),
        (replace(SHADOWED, comparisons=0, matches=0), "evidence",
         "neither enough shadow comparisons nor new-stack requests to judge"),
    ],
)  # fmt: skip
def test_a_failed_check_is_not_ready(evidence: Evidence, failed: str, text: str) -> None:
    result = verdict(evidence)
    assert not result.ready
    assert [c for c in result.checks if c.result == "fail"][0] == Check(failed, "fail", text)


def test_without_an_old_baseline() -> None:
    """A resource all on the new stack: 5xx judged against 0%, latency skipped."""
    new = Evidence("bookings", "new", 300.0, 0, 0, 0, BackendEvidence("drf", 300, 0, 0.02),
                   BackendEvidence("legacy"))  # fmt: skip
    assert results(new) == {
        "new backend": "ok", "shadow": "skip", "debt": "ok", "errors": "ok", "latency": "skip"
    }  # fmt: skip
    assert verdict(new).ready


def test_criteria_change_the_verdict() -> None:
    strict = Criteria(min_requests=500, min_match=0.999, max_error_delta=0.001, max_p99_ratio=1.1)
    assert results(SHADOWED, strict)["shadow"] == "fail"
    assert results(CANARY, strict)["errors"] == "fail"
    lax = Criteria(min_requests=10)
    assert verdict(replace(SHADOWED, comparisons=20, matches=20), lax).ready


def test_verdict_json() -> None:
    body = verdict_json(CANARY, verdict(CANARY), Criteria())
    assert body == {
        "resource": "bookings",
        "stage": "canary 25%",
        "ready": True,
        "window_seconds": 300.0,
        "criteria": {"min_requests": 200, "min_match": 0.995, "max_error_delta": 0.005,
                     "max_p99_ratio": 1.5},
        "shadow": {"comparisons": 0, "matches": 0, "match_rate": None},
        "debt_shapes": 0,
        "new": {"backend": "drf", "requests": 250, "errors": 1, "error_rate": 0.004,
                "p99_seconds": 0.05},
        "old": {"backend": "legacy", "requests": 1000, "errors": 2, "error_rate": 0.002,
                "p99_seconds": 0.04},
        "checks": [
            {"name": "new backend", "result": "ok", "text": "drf against legacy"},
            {"name": "shadow", "result": "skip", "text": "no shadow comparison"},
            {"name": "debt", "result": "ok", "text": "no request shape needed a fallback"},
            {"name": "errors", "result": "ok", "text": "250 requests, 5xx 0.4% vs 0.2%"},
            {"name": "latency", "result": "ok", "text": "p99 50 ms vs 40 ms"},
        ],
    }  # fmt: skip
