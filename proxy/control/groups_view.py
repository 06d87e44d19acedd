"""The table's groups as the admin API and the dashboard show them.

GET /-/routes carries `"groups": {"reservations": ["bookings", "customers"]}` (what
`strangler status` prints); GET /-/stats carries each group with its members' backends, and
each resource its `"group"` (null: in none)::

    "groups": [{"group": "reservations",
                "members": [{"resource": "bookings", "backend": "drf"},
                            {"resource": "customers", "backend": "legacy"}]}]
"""

from __future__ import annotations

from typing import Any

from proxy.routing.groups import group_of
from proxy.routing.model import RouteTable


def groups_json(table: RouteTable) -> dict[str, list[str]]:
    return {name: list(members) for name, members in table.groups.items()}


def with_groups(body: dict[str, Any], table: RouteTable) -> None:
    """Add the groups to a GET /-/stats `body`, and each resource's group to its entry."""
    body["groups"] = [
        {
            "group": name,
            "members": [
                {"resource": member, "backend": table.backend_for(member)} for member in members
            ],
        }
        for name, members in table.groups.items()
    ]
    for resource in body["resources"]:
        resource["group"] = group_of(table, resource["resource"])
