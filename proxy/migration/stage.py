"""Where each resource is in its migration, derived from its entry of the table: pure.

The old stack is the table's `default` backend; "the new stack" is any other backend. From the
entry alone (per-method overrides aside):

    legacy      the backend is the default, and no share of clients nor shadow copies go
                anywhere else (also every resource the table does not list)
    shadow      the backend is the default; copies go to another backend (shadow percent > 0)
                and no client does
    canary N%   the backend is the default and a canary sends N% (> 0) to another backend;
                or the backend is new and a canary sends some share back to the default
                (then N is what stays on the new stack)
    new         the backend is new and a fallback is still set, or fallback debt of the
                resource was recorded less than `retire_after` seconds ago
    retired     the backend is new, no fallback, no debt recorded for `retire_after` seconds

>>> stage_of(None, "legacy").text
'legacy'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.routing.model import Route

STAGES = ("legacy", "shadow", "canary", "new", "retired")  # the `stage` label values
RETIRE_AFTER = 86400.0  # seconds without fallback debt before a new-stack resource is retired


@dataclass(frozen=True)
class Stage:
    name: str  # one of STAGES
    percent: float | None = None  # canary only: the share of requests on the new stack

    @property
    def text(self) -> str:
        """`canary 5%`, `shadow`, ..."""
        return self.name if self.percent is None else f"{self.name} {self.percent:g}%"


def stage_of(
    route: Route | None,
    default: str,
    *,
    last_debt: float | None = None,
    now: float = 0.0,
    retire_after: float = RETIRE_AFTER,
) -> Stage:
    """The stage of a resource whose entry is `route` (None: not listed) in a table whose
    default backend is `default`. `last_debt`: when fallback debt of the resource was last
    recorded (seconds since the epoch, like `now`); None: never."""
    if route is None:
        return Stage("legacy")
    canary = route.canary
    if route.backend == default:
        if canary is not None and canary.percent > 0 and canary.backend != default:
            return Stage("canary", canary.percent)
        shadow = route.shadow
        if shadow is not None and shadow.percent > 0 and shadow.backend != default:
            return Stage("shadow")
        return Stage("legacy")
    if canary is not None and canary.percent > 0 and canary.backend == default:
        return Stage("canary", 100.0 - canary.percent)
    if route.fallback is not None:
        return Stage("new")
    if last_debt is not None and now - last_debt < retire_after:
        return Stage("new")
    return Stage("retired")


def new_backend(route: Route | None, default: str) -> str | None:
    """The new-stack backend a resource is moving to (or has moved to); None when its entry
    names none: the backend if not the default, else the canary's, else the shadow's."""
    if route is None:
        return None
    if route.backend != default:
        return route.backend
    for candidate in (route.canary, route.shadow):
        if candidate is not None and candidate.backend != default:
            return candidate.backend
    return None


def stage_counts(stages: Iterable[Stage]) -> dict[str, int]:
    """How many resources are at each stage, every stage named (canaries of any percent
    together), in migration order."""
    counts = dict.fromkeys(STAGES, 0)
    for stage in stages:
        counts[stage.name] += 1
    return counts


def shares(requests: Mapping[str, float]) -> dict[str, float]:
    """Each backend's share of `requests` (backend -> count), largest first; {} when none."""
    total = sum(requests.values())
    if total <= 0:
        return {}
    ordered = sorted(requests.items(), key=lambda item: (-item[1], item[0]))
    return {name: count / total for name, count in ordered if count > 0}


def progress_text(counts: Mapping[str, int], backend_shares: Mapping[str, float]) -> str:
    """The migration in one line.

    >>> progress_text({"legacy": 3, "shadow": 0, "new": 1}, {"legacy": 0.8, "drf": 0.2})
    '3 legacy, 1 new; last 5m: legacy 80.0%, drf 20.0%'
    """
    stages = ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "no resource"
    served = ", ".join(f"{name} {share:.1%}" for name, share in backend_shares.items())
    return f"{stages}; last 5m: {served or 'no requests'}"
