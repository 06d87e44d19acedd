"""proxy.migration.guard: the rolling window, the quantile, the verdict, arming from the table and
the audit log, the per-request observation."""

from __future__ import annotations

import pytest

from proxy.migration.guard import (
    EDGES_MS,
    GUARD_USER,
    Figures,
    Guards,
    Window,
    canary_verdict,
    edges_for,
    quantile,
    verdict,
)
from proxy.routing.model import Guard
from proxy.routing.parser import parse_table

ERROR_GUARD = Guard(max_error_rate=0.05, max_p99_ms=None, min_requests=50, window=60, dry_run=False)
P99_GUARD = Guard(max_error_rate=None, max_p99_ms=500, min_requests=20, window=60, dry_run=False)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fill(window: Window, requests: int, errors: int = 0, ms: float = 10.0) -> None:
    for number in range(requests):
        window.observe(number < errors, ms)


# -- the window ----------------------------------------------------------------------------------


def test_window_counts_requests_errors_and_p99() -> None:
    window = Window(60, clock=Clock())
    fill(window, 300, errors=21, ms=8.0)
    fill(window, 12, ms=900.0)
    figures = window.figures()
    assert (figures.requests, figures.errors) == (312, 21)
    assert figures.error_rate == pytest.approx(21 / 312)
    assert figures.p99_ms is not None and 861.0 < figures.p99_ms <= 1024.0  # 900 ms: (861, 1024]


def test_window_forgets_what_is_older_than_the_window() -> None:
    clock = Clock()
    window = Window(10, clock=clock)  # 30 slots of 1/3 s
    fill(window, 40, errors=40)
    clock.now += 5
    fill(window, 10)
    assert (window.figures().requests, window.figures().errors) == (50, 40)
    clock.now += 5.5  # the first 40 are more than 10 s old
    assert (window.figures().requests, window.figures().errors) == (10, 0)
    clock.now += 10
    assert window.figures() == Figures(0, 0, None)
    fill(window, 3)
    assert len(window.slots) == 1  # old slots are dropped when a new one starts


def test_window_keeps_at_most_one_slot_per_slot_width() -> None:
    clock = Clock()
    window = Window(3, clock=clock)
    for _ in range(200):
        clock.now += 0.05
        fill(window, 1)
    assert len(window.slots) <= 30
    assert 55 <= window.figures().requests <= 61  # 2.9 s to 3 s of 20 requests per second


def test_quantile_is_exact_at_an_edge() -> None:
    edges = edges_for(P99_GUARD)
    assert 500 in edges and set(EDGES_MS) <= set(edges)
    window = Window(60, edges, clock=Clock())
    fill(window, 99, ms=499.0)
    fill(window, 1, ms=501.0)
    figures = window.figures()
    assert figures.p99_ms is not None and figures.p99_ms <= 500
    fill(window, 1, ms=501.0)  # 2 of 101 above 500 ms: the 100th is above it
    figures = window.figures()
    assert figures.p99_ms is not None and 500 < figures.p99_ms < 520


def test_quantile_of_a_histogram() -> None:
    assert quantile([0, 0, 0], [1.0, 2.0], 0.99) is None
    assert quantile([0, 10, 0], [1.0, 2.0], 0.99) == 2.0
    assert quantile([100, 0, 0], [1.0, 2.0], 0.5) == 0.5
    assert quantile([0, 0, 4], [1.0, 2.0], 0.99) == 2.0  # above every edge: the last edge


# -- the verdict ---------------------------------------------------------------------------------


def test_error_rate_over_the_limit_gives_the_reason_with_the_figures() -> None:
    reason = verdict(ERROR_GUARD, Figures(500, 36, 12.0))
    assert reason == "guard: error rate 7.2% > 5% over 60 s, 500 requests"


def test_p99_over_the_limit_gives_the_reason_with_the_figures() -> None:
    reason = verdict(P99_GUARD, Figures(312, 0, 850.4))
    assert reason == "guard: p99 850 ms > 500 ms over 60 s, 312 requests"


@pytest.mark.parametrize(
    ("guard", "figures"),
    [
        (ERROR_GUARD, Figures(49, 49, 5.0)),  # below min_requests
        (ERROR_GUARD, Figures(100, 5, 5.0)),  # exactly at the limit
        (ERROR_GUARD, Figures(100, 0, 99_000.0)),  # no p99 limit
        (P99_GUARD, Figures(100, 100, 500.0)),  # no error limit; p99 at the limit
        (P99_GUARD, Figures(19, 0, 900.0)),  # below min_requests
    ],
)
def test_within_the_limits_nothing_fires(guard: Guard, figures: Figures) -> None:
    assert verdict(guard, figures) is None


def test_min_requests_is_the_first_count_that_fires() -> None:
    assert verdict(ERROR_GUARD, Figures(50, 50, 1.0)) == (
        "guard: error rate 100.0% > 5% over 60 s, 50 requests"
    )


# -- arming from the table and the audit log -----------------------------------------------------

TABLE = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
resources:
  bookings:
    backend: drf
    guard: {max_error_rate: 0.05, min_requests: 5, window: 10}
  customers:
    backend: legacy
    guard: {max_error_rate: 0.05, min_requests: 5, window: 10}
  tours: drf
"""


def flip_entry(resource: str, old: str, new: str, user: str = "ana") -> dict[str, str]:
    return {"resource": resource, "from": old, "to": new, "action": "flip", "user": user}


def rollback_entry(resource: str, old: str, new: str, user: str = GUARD_USER) -> dict[str, str]:
    return {
        "resource": resource, "from": old, "to": new, "action": "rollback", "user": user,
        "time": "2026-11-28T10:00:00.000Z", "reason": "guard: error rate 9.0% > 5% ...",
    }  # fmt: skip


def test_only_a_resource_with_somewhere_to_roll_back_to_is_watched() -> None:
    guards = Guards()
    guards.sync(parse_table(TABLE), [])
    assert list(guards.watches) == ["bookings"]  # customers is where a rollback would send it
    assert guards.watches["bookings"].backend == "drf"
    assert guards.describe("bookings")["state"] == "armed"
    assert guards.describe("customers")["state"] == "off"
    assert guards.describe("tours")["state"] == "off"


def test_observe_counts_only_the_watched_backend_of_a_guarded_resource() -> None:
    guards = Guards()
    guards.sync(parse_table(TABLE), [])
    guards.observe("bookings", "drf", 500, 0.01)
    guards.observe("bookings", "drf", 200, 0.01)
    guards.observe("bookings", "legacy", 500, 0.01)  # a fallback or a canary's other side
    guards.observe("tours", "drf", 500, 0.01)
    guards.observe("other", "legacy", 502, 0.01)
    assert guards.watches["bookings"].window.figures().requests == 2
    assert guards.describe("bookings")["window"] == {
        "requests": 2,
        "errors": 1,
        "error_rate": 0.5,
        "p99_ms": 11.3,
    }  # fmt: skip  (both in the bucket (9.5, 11.3]: the p99 is its top)


def test_a_guard_that_fired_stays_quiet_until_the_resource_is_flipped_anew() -> None:
    guards = Guards()
    history = [
        flip_entry("customers", "legacy", "drf"),
        rollback_entry("customers", "drf", "legacy"),
    ]
    table = parse_table(TABLE.replace("backend: legacy", "backend: drf"))
    guards.sync(parse_table(TABLE), history)
    assert "customers" not in guards.watches
    assert guards.describe("customers")["state"] == "rolled back"
    assert guards.describe("customers")["fired"] == {
        "time": "2026-11-28T10:00:00.000Z", "reason": "guard: error rate 9.0% > 5% ..."
    }  # fmt: skip
    guards.sync(table, [*history, flip_entry("customers", "legacy", "drf")])
    assert guards.watches["customers"].backend == "drf"
    assert guards.describe("customers")["state"] == "armed"


def test_a_groups_entries_count_as_changes_of_each_member() -> None:
    """After the guard's rollback, a group flip and a group rollback of customers: the latest
    change of customers is the group's, not the guard's (proxy.routing.audit)."""
    moved = {"customers": {"from": "legacy", "to": "drf"}}
    history = [
        flip_entry("customers", "legacy", "drf"),
        rollback_entry("customers", "drf", "legacy"),
        {"group": "crm", "members": moved, "action": "flip", "user": "ana"},
    ]
    guards = Guards()
    guards.sync(parse_table(TABLE.replace("backend: legacy", "backend: drf")), history)
    assert guards.watches["customers"].backend == "drf"  # a rollback would go to legacy
    back = {"customers": {"from": "drf", "to": "legacy"}}
    history.append({"group": "crm", "members": back, "action": "rollback", "user": "ana"})
    guards.sync(parse_table(TABLE), history)
    assert (guards.fired, guards.describe("customers")["state"]) == ({}, "off")


def test_after_a_manual_rollback_the_guard_watches_what_is_left_to_undo() -> None:
    history = [
        flip_entry("bookings", "legacy", "drf"),
        flip_entry("bookings", "drf", "legacy"),
        rollback_entry("bookings", "legacy", "drf", user="ana"),
    ]
    guards = Guards()
    guards.sync(parse_table(TABLE), history)
    assert guards.watches["bookings"].backend == "drf"  # a rollback would go to legacy


def test_a_window_survives_a_reload_that_does_not_change_its_guard() -> None:
    guards = Guards()
    guards.sync(parse_table(TABLE), [])
    window = guards.watches["bookings"].window
    guards.sync(parse_table(TABLE.replace("tours: drf", "tours: legacy")), [])
    assert guards.watches["bookings"].window is window
    guards.sync(parse_table(TABLE.replace("window: 10}", "window: 20}")), [])
    assert guards.watches["bookings"].window is not window


# -- the canary against its live baseline --------------------------------------------------------

BOTH_GUARD = Guard(max_error_rate=0.05, max_p99_ms=500, min_requests=20, window=60, dry_run=False)


def test_a_failing_canary_over_the_limit_and_the_baseline_is_stopped() -> None:
    reason = canary_verdict(
        ERROR_GUARD, Figures(50, 10, 9.0), Figures(400, 4, 8.0), "drf", "legacy"
    )
    assert (
        reason == "guard: canary drf error rate 20.0% > 5% and legacy's 1.0% over 60 s, 50 requests"
    )


def test_a_slow_canary_is_stopped_on_its_p99_against_the_baseline() -> None:
    reason = canary_verdict(P99_GUARD, Figures(20, 0, 850.4), Figures(90, 0, 40.2), "drf", "legacy")
    assert (
        reason == "guard: canary drf p99 850 ms > 500 ms and legacy's 40 ms over 60 s, 20 requests"
    )


def test_with_no_baseline_traffic_the_limits_alone_decide() -> None:
    assert canary_verdict(
        BOTH_GUARD, Figures(20, 2, 9.0), Figures(0, 0, None), "drf", "legacy"
    ) == ("guard: canary drf error rate 10.0% > 5% and legacy's 0.0% over 60 s, 20 requests")
    assert canary_verdict(
        BOTH_GUARD, Figures(20, 0, 600.0), Figures(0, 0, None), "drf", "legacy"
    ) == ("guard: canary drf p99 600 ms > 500 ms and legacy's none over 60 s, 20 requests")


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        (Figures(19, 19, 900.0), Figures(100, 0, 5.0)),  # below min_requests on the canary side
        (Figures(50, 25, 9.0), Figures(100, 50, 8.0)),  # as bad as the old stack: not its fault
        (Figures(50, 25, 9.0), Figures(100, 60, 8.0)),  # better than the old stack
        (Figures(100, 5, 9.0), Figures(100, 0, 8.0)),  # at the error limit
        (Figures(50, 0, 900.0), Figures(100, 0, 950.0)),  # slow, but the old stack is slower
        (Figures(50, 0, 500.0), Figures(100, 0, 8.0)),  # at the p99 limit
    ],
)
def test_a_canary_within_the_limits_or_no_worse_than_the_baseline_goes_on(
    canary: Figures, baseline: Figures
) -> None:
    assert canary_verdict(BOTH_GUARD, canary, baseline, "drf", "legacy") is None


CANARY_TABLE = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
resources:
  bookings:
    backend: legacy
    canary: {backend: drf, percent: 10}
    guard: {max_error_rate: 0.05, min_requests: 3, window: 10}
  customers:
    backend: legacy
    canary: {backend: drf, percent: 0}
    guard: {max_error_rate: 0.05, min_requests: 3, window: 10}
  tours:
    backend: legacy
    canary: {backend: drf, percent: 50}
"""


def test_a_guarded_canary_with_a_share_is_armed_without_a_flip() -> None:
    guards = Guards()
    guards.sync(parse_table(CANARY_TABLE), [])
    assert guards.watches == {}  # nothing to roll back to: the main backend is not watched
    assert list(guards.canaries) == ["bookings"]  # customers' canary has no share; tours no guard
    side = guards.canaries["bookings"]
    assert (side.backend, side.main) == ("drf", "legacy")
    assert guards.describe("bookings")["state"] == "armed"
    assert guards.describe("customers")["state"] == "off"
    guards.sync(parse_table(CANARY_TABLE.replace("percent: 0}", "percent: 1}")), [])
    assert sorted(guards.canaries) == ["bookings", "customers"]
    assert guards.canaries["bookings"] is side  # a reload keeps the running windows


def test_observe_counts_the_canary_side_and_the_routed_baseline_apart() -> None:
    guards = Guards()
    guards.sync(parse_table(CANARY_TABLE), [])
    for status in (503, 503, 200):
        guards.observe("bookings", "drf", status, 0.01, canary=True)
    guards.observe("bookings", "drf", 500, 0.01)  # a tester's override: neither side
    guards.observe("bookings", "legacy", 200, 0.01)
    guards.observe("bookings", "legacy", 500, 0.01, canary=True)  # a canary's fallback answer
    guards.observe("tours", "drf", 503, 0.01, canary=True)
    side = guards.canaries["bookings"]
    assert side.window.figures().requests == 3 and side.window.figures().errors == 2
    assert side.baseline is not None and side.baseline.figures().requests == 1
    assert side.baseline.figures().errors == 0
    assert side.verdict() == (
        "guard: canary drf error rate 66.7% > 5% and legacy's 0.0% over 10 s, 3 requests"
    )
    live = guards.describe("bookings")["canary"]
    assert (live["watching"], live["baseline"], live["would_stop"]) == ("drf", "legacy", None)
    assert (live["window"]["requests"], live["baseline_window"]["requests"]) == (3, 1)
