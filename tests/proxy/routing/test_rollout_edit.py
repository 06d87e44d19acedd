"""proxy.routing.plans, rollout_edit and yamledit's value edits: a rollout plan read with
`file:line` errors, its edits keeping every other byte, conditioned on the plan not having moved,
re-parsed against `max_in_flight`; a flip pausing a running plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.routing import edit, rollout_edit
from proxy.routing.edit import Author, EditConflict, EditError
from proxy.routing.model import Canary, Gates, Rollout, RoutesError, Shadow
from proxy.routing.parser import load_table, parse_table
from proxy.routing.rollout_edit import Expected, plan_abort, plan_advance, plan_command
from proxy.routing.yamledit import remove_key, set_value

TABLE = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:1"}
  drf: {url: "http://127.0.0.1:2"}
default: legacy
resources:
  bookings:
    backend: legacy  # the old stack
    rollout:
      to: drf
      steps: [shadow, 5, 100]   # a comment kept
      step_seconds: 60
      min_requests: 50
      gates: {min_match: 99.5, max_error_delta: 0.5, max_p99_ratio: 1.5}
  customers: legacy
"""
AUTHOR = Author("ana", "why")


def planned(text: str, plan: object, **kwargs: object) -> tuple[str, edit.Change]:
    result = plan(text, parse_table(text), [], author=AUTHOR, **kwargs)  # type: ignore[operator]
    assert result is not None
    new_text, change = result
    assert new_text is not None
    return new_text, change


def test_a_plan_is_read_with_its_defaults() -> None:
    route = parse_table(TABLE).routes["bookings"]
    assert route.rollout == Rollout(
        to="drf",
        steps=("shadow", 5.0, 100.0),
        step_seconds=60.0,
        min_requests=50,
        gates=Gates(99.5, 0.5, 1.5),
    )
    assert not route.in_flight and parse_table(TABLE).max_in_flight is None


R = "rollout of resource 'bookings'"
BAD = [
    ("to: drf", "to: nowhere", f"10: {R}: to must be a backend name, got 'nowhere'"),
    ("[shadow, 5, 100]", "[shadow, 0, 100]",
     f"11: {R}: steps item 0 is not shadow or a canary percent in (0, 100]"),
    ("[shadow, 5, 100]", "[50, 5]", f"11: {R}: steps must be shadow then rising canary percents"),
    ("step_seconds: 60", "step_seconds: 0",
     f"12: {R}: step_seconds must be a number of seconds > 0, got 0"),
    ("min_requests: 50", "min_requests: 50\n      state: go",
     f"14: {R}: state must be pending, running, paused, aborted or done, got 'go'"),
    ("min_requests: 50", "min_requests: 50\n      step: 3",
     f"14: {R}: step must be below 3 (the number of steps)"),
    ("min_requests: 50", "min_requests: 50\n      since: 2026-11-28T10:00:00Z",
     f'14: {R}: since must be a quoted UTC time "…T…Z", got datetime.datetime(2026, 11, 28, 10, '
     "0, tzinfo=datetime.timezone.utc)"),
    ("min_match: 99.5", "min_match: 101",
     f"14: gates of {R}: min_match must be a number from 0 to 100, got 101"),
    ("default: legacy\n", "default: legacy\nmax_in_flight: 0\n",
     "6: max_in_flight must be an integer >= 1, got 0"),
    ("# the old stack\n", "# the old stack\n    canary: {backend: legacy, percent: 0}\n",
     f"7: {R}: the canary goes to 'legacy', not to 'drf'"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "error"), BAD)
def test_a_bad_plan_is_refused_with_its_line(old: str, new: str, error: str) -> None:
    assert old in TABLE
    with pytest.raises(RoutesError) as caught:
        parse_table(TABLE.replace(old, new, 1))
    assert caught.value.errors == (f"routes.yaml:{error}",)


def test_start_writes_the_state_and_the_first_steps_traffic_keeping_every_other_byte() -> None:
    text, change = planned(TABLE, plan_command, resource="bookings", action="start")
    since = parse_table(text).routes["bookings"].rollout.since  # type: ignore[union-attr]
    assert text == TABLE.replace(
        "      gates: {min_match: 99.5, max_error_delta: 0.5, max_p99_ratio: 1.5}\n",
        "      gates: {min_match: 99.5, max_error_delta: 0.5, max_p99_ratio: 1.5}\n"
        f'      state: running\n      step: 0\n      since: "{since}"\n'
        "    shadow: {backend: drf}\n",
    )
    assert (change.action, change.from_backend, change.to_backend) == (
        "rollout-start",
        "legacy",
        "drf",
    )


def test_steps_move_shadow_to_canary_and_the_end_flips() -> None:
    text, _ = planned(TABLE, plan_command, resource="bookings", action="start")
    plan = parse_table(text).routes["bookings"].rollout
    assert plan is not None
    text, change = planned(text, plan_advance, resource="bookings", expect=Expected(0, plan.since))
    route = parse_table(text).routes["bookings"]
    assert (route.shadow, route.canary, change.action) == (
        None,
        Canary("drf", 5.0, None),
        "rollout-step",
    )
    assert route.rollout is not None
    stale = Expected(0, route.rollout.since)  # judged on a step another process already left
    assert (
        plan_advance(text, parse_table(text), [], resource="bookings", expect=stale, author=AUTHOR)
        is None
    )
    expect = Expected(1, route.rollout.since)
    text, _ = planned(text, plan_advance, resource="bookings", expect=expect)
    route = parse_table(text).routes["bookings"]
    assert route.rollout is not None and route.canary == Canary("drf", 100.0, None)
    expect = Expected(2, route.rollout.since)
    text, change = planned(text, plan_advance, resource="bookings", expect=expect)
    route = parse_table(text).routes["bookings"]
    assert (route.backend, route.canary, route.shadow, change.action) == (
        "drf",
        None,
        None,
        "rollout-done",
    )
    assert "    backend: drf  # the old stack\n" in text
    assert route.rollout is not None and route.rollout.state == "done"


def test_abort_sends_everyone_back_in_one_edit() -> None:
    text, _ = planned(TABLE, plan_command, resource="bookings", action="start")
    plan = parse_table(text).routes["bookings"].rollout
    assert plan is not None
    text, _ = planned(text, plan_advance, resource="bookings", expect=Expected(0, plan.since))
    plan = parse_table(text).routes["bookings"].rollout
    assert plan is not None
    text, change = planned(text, plan_abort, resource="bookings", expect=Expected(1, plan.since))
    route = parse_table(text).routes["bookings"]
    assert (route.canary, route.shadow, change.action, change.reason) == (
        Canary("drf", 0.0, None),
        None,
        "rollout-abort",
        "why",
    )
    assert route.rollout is not None and route.rollout.state == "aborted"


def test_commands_check_the_state_and_max_in_flight() -> None:
    with pytest.raises(
        EditError, match="cannot pause the rollout of 'bookings': it is pending, not running"
    ):
        planned(TABLE, plan_command, resource="bookings", action="pause")
    with pytest.raises(EditError, match="resource 'customers' has no rollout plan"):
        planned(TABLE, plan_command, resource="customers", action="start")
    crowded = TABLE.replace("default: legacy\n", "default: legacy\nmax_in_flight: 1\n").replace(
        "  customers: legacy\n", "  customers: {backend: legacy, shadow: {backend: drf}}\n"
    )
    with pytest.raises(EditConflict, match="max_in_flight is 1 but 2 resources are in flight"):
        planned(crowded, plan_command, resource="bookings", action="start")


def test_a_flip_of_a_running_plan_pauses_it(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(TABLE)
    assert rollout_edit.command(routes, "bookings", "start", user="ana").action == "rollout-start"
    change = edit.flip(routes, "bookings", "drf", user="bo")
    assert change.paused
    plan = load_table(routes).routes["bookings"].rollout
    assert plan is not None and plan.state == "paused"
    assert edit.flip(routes, "customers", "drf", user="bo").paused is False
    lines = edit.audit_path(routes).read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["rollout-start", "flip", "flip"]


def test_value_edits_in_block_and_flow_style() -> None:
    block = (
        "resources:\n  a:\n    backend: x\n    shadow:\n      backend: y  # c\n    fallback: z\n"
    )
    assert remove_key(block, "a", "shadow") == "resources:\n  a:\n    backend: x\n    fallback: z\n"
    assert set_value(block, "a", ("shadow",), "{backend: w}") == (
        "resources:\n  a:\n    backend: x\n    shadow: {backend: w}\n    fallback: z\n"
    )
    flow = "resources:\n  a: {shadow: {backend: y}, backend: x}\n"
    assert remove_key(flow, "a", "shadow") == "resources:\n  a: {backend: x}\n"
    assert set_value(flow, "a", ("canary",), "{backend: y, percent: 1}") == (
        "resources:\n  a: {shadow: {backend: y}, backend: x, canary: {backend: y, percent: 1}}\n"
    )
    with pytest.raises(EditConflict, match="resource 'b' is not a long-form entry"):
        set_value("resources:\n  b: x\n", "b", ("backend",), "y")
    assert (
        Shadow("drf", 100.0, ())
        == parse_table(
            TABLE.replace(
                "  customers: legacy\n", "  customers: {backend: legacy, shadow: {backend: drf}}\n"
            )
        )
        .routes["customers"]
        .shadow
    )
