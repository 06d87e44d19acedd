"""Each resource's rollout plan as /-/stats shows it (the dashboard's "Rollout" column)::

    "rollout": {"state": "running", "to": "drf", "step": 3, "steps": 6, "current": "25%",
                "labels": ["shadow", "1%", "5%", "25%", "50%", "100%"],
                "since": "2026-11-28T10:00:00.000Z", "seconds_on_step": 130.0,
                "step_seconds": 600.0, "min_requests": 200}

`step` counts from 1 (the table's `step` index plus one) of `steps`; `since` is when the step
began (started, resumed or stepped; a pause keeps it) and `seconds_on_step` the time from then
to the answer (null, like `since`, for a plan never started). A resource without a plan, and
"other", carry `"rollout": null`. The page changes a plan through the admin API
(POST /-/routes/{resource}/rollout/{pause|resume|abort}).
"""

from __future__ import annotations

from typing import Any

from proxy.clock import from_iso
from proxy.migration.rollout import step_name
from proxy.routing.model import Rollout, RouteTable


def with_plans(body: dict[str, Any], table: RouteTable, now: float) -> dict[str, Any]:
    """/-/stats `body` with each resource's "rollout" (null without a plan)."""
    for resource in body["resources"]:
        route = table.routes.get(resource["resource"])
        plan = None if route is None else route.rollout
        resource["rollout"] = None if plan is None else rollout_json(plan, now)
    return body


def rollout_json(plan: Rollout, now: float) -> dict[str, Any]:
    began = None if plan.since is None else from_iso(plan.since)
    return {
        "state": plan.state,
        "to": plan.to,
        "step": plan.step + 1,
        "steps": len(plan.steps),
        "current": step_name(plan.current),
        "labels": [step_name(step) for step in plan.steps],
        "since": plan.since,
        "seconds_on_step": None if began is None else round(max(0.0, now - began), 1),
        "step_seconds": plan.step_seconds,
        "min_requests": plan.min_requests,
    }
