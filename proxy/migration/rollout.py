"""The rollout autopilot's judgement: a plan's figures over its current step, and the verdict.

`read_counts` reads one resource's totals so far (requests, 5xx and latency buckets per backend,
shadow comparisons by result) from the proxy's metrics, summed over the workers when `directory`
holds their value files. The difference of two readings is a step's `Figures`; `judge` says
whether the plan holds, advances (every gate held for `step_seconds` with at least
`min_requests` on the new backend, or comparisons on a shadow step) or aborts (a gate failed),
with the evidence as the audit reason gives it.

A gate is judged once the step has `JUDGE_AFTER` requests (comparisons), or `min_requests` if
fewer: a single 5xx out of one request is no evidence. The latency gate compares p99s estimated
from the histogram buckets, so it only fails when the new p99 is also `LATENCY_SLACK` seconds
above the old one (differences inside one bucket of fast answers are noise); it is skipped
while the old backend serves none of the resource's requests (at 100%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.observe.metrics import SHADOW_RESULTS
from proxy.observe.pairs import PairSnapshot, pair_snapshot
from proxy.observe.stats import Buckets, bucket_increase, increase, quantile
from proxy.routing.model import SHADOW_STEP, Rollout

JUDGE_AFTER = 20
LATENCY_SLACK = 0.005
HOLD, ADVANCE, ABORT = "hold", "advance", "abort"


@dataclass(frozen=True)
class Counts:
    """One resource's totals so far."""

    requests: Mapping[str, float] = field(default_factory=dict)  # backend -> requests
    errors: Mapping[str, float] = field(default_factory=dict)  # backend -> 5xx answers
    buckets: Mapping[str, Buckets] = field(default_factory=dict)  # backend -> latency buckets
    shadow: Mapping[str, float] = field(default_factory=dict)  # result -> comparisons

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "errors": dict(self.errors),
            "buckets": {
                name: [list(pair) for pair in pairs] for name, pairs in self.buckets.items()
            },
            "shadow": dict(self.shadow),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counts:
        """The counts another replica shared (`to_json`); ValueError when malformed."""
        try:
            buckets = {
                str(name): tuple((float(bound), float(count)) for bound, count in pairs)
                for name, pairs in data["buckets"].items()
            }
            return cls(
                {str(k): float(v) for k, v in data["requests"].items()},
                {str(k): float(v) for k, v in data["errors"].items()},
                buckets,
                {str(k): float(v) for k, v in data["shadow"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not rollout counts: {exc}") from exc


def delta(after: Counts, before: Counts) -> Counts:
    """What was counted between two readings (a counter reset counts from zero)."""
    return Counts(
        {
            name: increase(value, before.requests.get(name, 0.0))
            for name, value in after.requests.items()
        },
        {
            name: increase(value, before.errors.get(name, 0.0))
            for name, value in after.errors.items()
        },
        {
            name: bucket_increase(pairs, before.buckets.get(name, ()))
            for name, pairs in after.buckets.items()
        },
        {
            name: increase(value, before.shadow.get(name, 0.0))
            for name, value in after.shadow.items()
        },
    )


def merged(parts: Sequence[Counts]) -> Counts:
    """The sum of several replicas' step counts: the fleet's figures.

    >>> merged([Counts({"drf": 2.0}), Counts({"drf": 3.0, "legacy": 1.0})]).requests
    {'drf': 5.0, 'legacy': 1.0}
    """
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    shadow: dict[str, float] = {}
    for part in parts:
        for target, source in (
            (requests, part.requests),
            (errors, part.errors),
            (shadow, part.shadow),
        ):
            for name, value in source.items():
                target[name] = target.get(name, 0.0) + value
        for name, pairs in part.buckets.items():
            bounds = buckets.setdefault(name, {})
            for bound, count in pairs:
                bounds[bound] = bounds.get(bound, 0.0) + count
    sorted_buckets = {name: tuple(sorted(bounds.items())) for name, bounds in buckets.items()}
    return Counts(requests, errors, sorted_buckets, shadow)


def read_counts(registry: CollectorRegistry, resource: str, directory: Path | None) -> Counts:
    """One resource's `Counts` from the proxy's totals (`proxy.observe.pairs.pair_snapshot`)."""
    return counts_of(pair_snapshot(registry, 0.0, directory), resource)


def counts_of(snapshot: PairSnapshot, resource: str) -> Counts:
    mine = {
        backend: counts for (name, backend), counts in snapshot.pairs.items() if name == resource
    }
    return Counts(
        {backend: counts.requests for backend, counts in mine.items()},
        {backend: counts.errors for backend, counts in mine.items()},
        {backend: counts.buckets for backend, counts in mine.items()},
        {result: value for (name, result), value in snapshot.shadow.items() if name == resource},
    )


@dataclass(frozen=True)
class Side:
    """One backend's share of a step: requests, 5xx %, p99 seconds."""

    requests: float
    error_percent: float | None
    p99: float | None

    def text(self) -> str:
        return "none" if self.error_percent is None else f"{self.error_percent:.1f}%"

    def p99_text(self) -> str:
        return "-" if self.p99 is None else f"{self.p99 * 1000:.0f} ms"


@dataclass(frozen=True)
class Figures:
    new: Side
    old: Side
    comparisons: float
    matches: float

    @property
    def match_percent(self) -> float | None:
        return 100 * self.matches / self.comparisons if self.comparisons else None


def figures(step: Counts, old: str, new: str) -> Figures:
    """A step's `Figures` (its counts: `delta` of two readings, `merged` over a fleet) for the
    `old` and `new` backends."""

    def side(name: str) -> Side:
        requests = step.requests.get(name, 0.0)
        errors = step.errors.get(name, 0.0)
        percent = 100 * errors / requests if requests else None
        return Side(requests, percent, quantile(0.99, step.buckets.get(name, ())))

    shadow = {result: step.shadow.get(result, 0.0) for result in SHADOW_RESULTS}
    return Figures(side(new), side(old), sum(shadow.values()), shadow["match"])


@dataclass(frozen=True)
class Verdict:
    action: str  # HOLD, ADVANCE or ABORT
    reason: str


def step_name(step: str | float) -> str:
    return step if isinstance(step, str) else f"{step:g}%"


def judge(plan: Rollout, seen: Figures, elapsed: float) -> Verdict:
    """Hold, advance or abort the plan after `elapsed` seconds on its step with `seen`."""
    gates, step = plan.gates, plan.current
    floor = min(JUDGE_AFTER, plan.min_requests)
    at = f"at step {step_name(step)}"
    if step == SHADOW_STEP:
        count, match = seen.comparisons, seen.match_percent
        evidence = f"{count:,.0f} comparisons, match {_percent(match)}"
        if gates.min_match is not None and match is not None and count >= floor:
            if match < gates.min_match:
                limit = f"below {gates.min_match:g}%"
                return Verdict(ABORT, f"gate min_match failed {at}: {evidence} ({limit})")
    else:
        new, old = seen.new, seen.old
        count = new.requests
        evidence = (
            f"{count:,.0f} requests, 5xx {new.text()} vs {old.text()}, "
            f"p99 {new.p99_text()} vs {old.p99_text()}"
        )
        judged = count >= floor
        delta = (new.error_percent or 0.0) - (old.error_percent or 0.0)
        if judged and gates.max_error_delta is not None and delta > gates.max_error_delta:
            limit = f"+{delta:.1f} points, limit +{gates.max_error_delta:g}"
            return Verdict(ABORT, f"gate max_error_delta failed {at}: {evidence} ({limit})")
        if judged and gates.max_p99_ratio is not None and slower(new, old, gates.max_p99_ratio):
            assert new.p99 is not None and old.p99 is not None
            limit = f"ratio {new.p99 / old.p99:.1f}, limit {gates.max_p99_ratio:g}"
            return Verdict(ABORT, f"gate max_p99_ratio failed {at}: {evidence} ({limit})")
    if elapsed < plan.step_seconds or count < plan.min_requests:
        return Verdict(HOLD, evidence)
    last = plan.step + 1 >= len(plan.steps)
    following = f"done (backend {plan.to})" if last else step_name(plan.steps[plan.step + 1])
    return Verdict(ADVANCE, f"step {step_name(step)} -> {following}: {evidence}")


def slower(new: Side, old: Side, ratio: float) -> bool:
    if new.p99 is None or old.p99 is None or old.requests == 0:
        return False
    return new.p99 > ratio * old.p99 and new.p99 - old.p99 > LATENCY_SLACK


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"
