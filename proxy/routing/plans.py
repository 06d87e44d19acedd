"""The rollout plan of a resource entry, and the table's `max_in_flight`, as routes.yaml holds
them (read for `proxy.routing.parser`, with its `NodeReader` and `file:line` errors).

```yaml
max_in_flight: 5                 # resources in shadow, on a canary or rolling out at once
resources:
  bookings:
    backend: legacy
    rollout:
      to: drf
      steps: [shadow, 1, 5, 25, 50, 100]
      step_seconds: 600
      min_requests: 200
      gates: {min_match: 99.5, max_error_delta: 0.5, max_p99_ratio: 1.5}
      sticky: "header:X-Client"  # the canary's sticky key, when the plan adds the canary
      state: running             # pending when absent; running, paused, aborted, done
      step: 2                    # index in steps
      since: "2026-11-28T10:00:00.000Z"
```
"""

from __future__ import annotations

from collections.abc import Mapping

from proxy.routing.model import SHADOW_STEP, Backend, Gates, Rollout, Route
from proxy.routing.nodes import Entry, NodeReader, line_of
from proxy.routing.rules import (
    AT_LEAST_ONE,
    AT_LEAST_ZERO,
    GATES_KEYS,
    PERCENT,
    POSITIVE,
    ROLLOUT_KEYS,
    SECONDS,
    STATE,
    STEP,
    STICKY,
    TIME,
)


def read_rollout(
    reader: NodeReader, name: str, entry: Entry, backends: Mapping[str, Backend]
) -> Rollout | None:
    """`rollout:` of resource `name`, or None (errors reported on `reader`)."""
    where = f"rollout of resource '{name}'"
    found = reader.section(entry, where, ROLLOUT_KEYS, ("to", "steps"))
    if found is None:
        return None
    to = reader.scalar(found["to"].value)
    if not isinstance(to, str) or to not in backends:
        reader.error(found["to"].key_line, f"{where}: to must be a backend name, got {to!r}")
    steps = tuple(
        SHADOW_STEP if isinstance(step, str) else float(step)
        for step in reader.items(found["steps"], where, STEP)
    )
    percents = [step for step in steps if not isinstance(step, str)]
    if percents != sorted(set(percents)) or steps.count(SHADOW_STEP) > 1:
        line = found["steps"].key_line
        reader.error(line, f"{where}: steps must be shadow then rising canary percents")
    gates = read_gates(reader, where, found["gates"]) if "gates" in found else Gates()
    step = reader.option(found, "step", where, AT_LEAST_ZERO, 0)
    if steps and step >= len(steps):
        line = found["step"].key_line
        reader.error(line, f"{where}: step must be below {len(steps)} (the number of steps)")
    if not isinstance(to, str) or not steps or step >= len(steps):
        return None
    return Rollout(
        to=to,
        steps=steps,
        step_seconds=reader.option(found, "step_seconds", where, SECONDS, 600.0),
        min_requests=reader.option(found, "min_requests", where, AT_LEAST_ONE, 200),
        gates=gates,
        sticky=reader.option(found, "sticky", where, STICKY, None),
        state=reader.option(found, "state", where, STATE, "pending"),
        step=step,
        since=reader.option(found, "since", where, TIME, None),
    )


def read_gates(reader: NodeReader, where: str, entry: Entry) -> Gates:
    where = f"gates of {where}"
    found = reader.section(entry, where, GATES_KEYS, ())
    if found is None:
        return Gates()
    return Gates(
        min_match=reader.option(found, "min_match", where, PERCENT, None),
        max_error_delta=reader.option(found, "max_error_delta", where, PERCENT, None),
        max_p99_ratio=reader.option(found, "max_p99_ratio", where, POSITIVE, None),
    )


def check_route(reader: NodeReader, route: Route, line: int) -> None:
    """A plan's canary, when the entry has one, must send to the plan's `to`."""
    plan, canary = route.rollout, route.canary
    if plan is not None and canary is not None and canary.backend != plan.to:
        where = f"rollout of resource '{route.resource}'"
        reader.error(line, f"{where}: the canary goes to '{canary.backend}', not to '{plan.to}'")


def check_in_flight(
    reader: NodeReader, entry: Entry | None, routes: Mapping[str, Route]
) -> int | None:
    """`max_in_flight` (None when absent); more resources in flight than it allows is an error."""
    if entry is None:
        return None
    limit = reader.scalar(entry.value)
    if not AT_LEAST_ONE.accepts(limit):
        got = reader.kind(entry.value)
        reader.error(line_of(entry.value), f"max_in_flight must be {AT_LEAST_ONE.text}, got {got}")
        return None
    flying = sorted(name for name, route in routes.items() if route.in_flight)
    if len(flying) > limit:
        names = ", ".join(flying)
        message = f"max_in_flight is {limit} but {len(flying)} resources are in flight: {names}"
        reader.error(entry.key_line, f"{message} (shadow, canary or a running rollout)")
    return int(limit)
