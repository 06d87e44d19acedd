"""proxy.migration.stage: a resource's stage from its entry, as a parametrized table."""

from __future__ import annotations

import pytest

from proxy.migration.stage import (
    Stage,
    new_backend,
    progress_text,
    shares,
    stage_counts,
    stage_of,
)
from proxy.routing.model import Canary, Fallback, Route, Shadow

NOW = 1_800_000_000.0
DAY = 86400.0


def route(backend: str = "legacy", **features: object) -> Route:
    return Route("bookings", backend, **features)  # type: ignore[arg-type]


CANARY_DRF_5 = Canary("drf", 5.0, None)
SHADOW_DRF = Shadow("drf", 100.0, ())
FALLBACK_LEGACY = Fallback("legacy", frozenset({404}))


@pytest.mark.parametrize(
    ("entry", "last_debt", "expected"),
    [
        (None, None, "legacy"),
        (route(), None, "legacy"),
        (route(shadow=Shadow("drf", 0.0, ())), None, "legacy"),
        (route(canary=Canary("drf", 0.0, None)), None, "legacy"),
        (route(shadow=SHADOW_DRF), None, "shadow"),
        (route(canary=CANARY_DRF_5), None, "canary 5%"),
        (route(canary=CANARY_DRF_5, shadow=SHADOW_DRF), None, "canary 5%"),
        (route(canary=Canary("drf", 12.5, "header:X-Application-Key")), None, "canary 12.5%"),
        (route("drf", canary=Canary("legacy", 30.0, None)), None, "canary 70%"),
        (route("drf", fallback=FALLBACK_LEGACY), None, "new"),
        (route("drf", fallback=FALLBACK_LEGACY), NOW - 2 * DAY, "new"),
        (route("drf", shadow=Shadow("legacy", 100.0, ())), NOW - 60, "new"),
        (route("drf"), NOW - DAY + 1, "new"),
        (route("drf"), NOW - DAY, "retired"),
        (route("drf"), None, "retired"),
        (route("drf", canary=Canary("drf", 50.0, None)), None, "retired"),
    ],
)
def test_stage_of(entry: Route | None, last_debt: float | None, expected: str) -> None:
    stage = stage_of(entry, "legacy", last_debt=last_debt, now=NOW, retire_after=DAY)
    assert stage.text == expected


def test_retire_after_is_a_setting() -> None:
    entry = route("drf")
    assert stage_of(entry, "legacy", last_debt=NOW - 120, now=NOW, retire_after=60).name == (
        "retired"
    )
    assert stage_of(entry, "legacy", last_debt=NOW - 120, now=NOW).name == "new"  # a day


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (None, None),
        (route(), None),
        (route(shadow=SHADOW_DRF), "drf"),
        (route(canary=Canary("v3", 5.0, None), shadow=SHADOW_DRF), "v3"),
        (route("drf", canary=Canary("legacy", 5.0, None)), "drf"),
    ],
)
def test_new_backend(entry: Route | None, expected: str | None) -> None:
    assert new_backend(entry, "legacy") == expected


def test_counts_shares_and_the_progress_line() -> None:
    counts = stage_counts([Stage("legacy"), Stage("canary", 5.0), Stage("canary", 50.0)])
    assert counts == {"legacy": 1, "shadow": 0, "canary": 2, "new": 0, "retired": 0}
    assert shares({"drf": 25.0, "legacy": 75.0, "v3": 0.0}) == {"legacy": 0.75, "drf": 0.25}
    assert shares({"legacy": 0.0}) == {}
    assert progress_text(counts, {"legacy": 0.75, "drf": 0.25}) == (
        "1 legacy, 2 canary; last 5m: legacy 75.0%, drf 25.0%"
    )
    assert progress_text(stage_counts([]), {}) == "no resource; last 5m: no requests"
