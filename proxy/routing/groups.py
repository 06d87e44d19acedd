"""The `groups:` of routes.yaml, read for `proxy.routing.parser`, and a table's groups looked up.

```yaml
groups:
  reservations: [bookings, customers]   # flipped and rolled back together (flip --group)
  catalogue:
    - tours
    - departures
```

A group's members must be resources listed under `resources:`, each in one group at most. A
group's name follows the rule of backend names and is never a resource's name (nor `other`):
the audit log, `strangler status` and the dashboard show both, and `flip --group NAME` must not
be one typo away from meaning a resource.

    >>> from proxy.routing.parser import parse_table
    >>> table = parse_table("version: 1\\nbackends: {a: {url: 'http://h:1'}}\\ndefault: a\\n"
    ...                     "resources: {x: a, y: a}\\ngroups: {g: [x, y]}\\n", environ={})
    >>> dict(table.groups), group_of(table, "y")
    ({'g': ('x', 'y')}, 'g')
"""

from __future__ import annotations

from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from proxy.routing.model import OTHER_RESOURCE, RouteTable
from proxy.routing.nodes import Entry, NodeReader, line_of
from proxy.routing.rules import NAME_RE


def read_groups(
    reader: NodeReader, entry: Entry | None, resources: Entry | None
) -> dict[str, tuple[str, ...]]:
    """`groups:` (None: absent) as `{group: (member, ...)}`; errors reported on `reader`.

    `resources` is the `resources:` entry: members are checked against the names it lists,
    so a resource with a bad value is not reported a second time as an unknown member.
    """
    if entry is None or (
        isinstance(entry.value, ScalarNode) and reader.scalar(entry.value) is None
    ):
        return {}
    node = reader.mapping(entry, "groups")
    if node is None:
        return {}
    listed = _listed(resources)
    owner: dict[str, str] = {}  # member -> its group
    groups: dict[str, tuple[str, ...]] = {}
    for name, item in reader.entries(node, "groups", None, what="group").items():
        if _name_ok(reader, name, item, listed):
            groups[name] = _members(reader, name, item, listed, owner)
    return groups


def group_of(table: RouteTable, resource: str) -> str | None:
    """The group `resource` belongs to, or None."""
    for name, members in table.groups.items():
        if resource in members:
            return name
    return None


def _listed(resources: Entry | None) -> set[str]:
    node = None if resources is None else resources.value
    if not isinstance(node, MappingNode):
        return set()
    return {str(key.value) for key, _ in node.value if isinstance(key, ScalarNode)}


def _name_ok(reader: NodeReader, name: str, entry: Entry, listed: set[str]) -> bool:
    if not NAME_RE.match(name):
        reader.error(entry.key_line, f"invalid group name '{name}' (letters, digits, _ and -)")
    elif name == OTHER_RESOURCE:
        reader.error(entry.key_line, f"group name '{name}' is reserved for unlisted resources")
    elif name in listed:
        why = "group and resource names must differ"
        reader.error(entry.key_line, f"group name '{name}' is also a resource's name ({why})")
    else:
        return True
    return False


def _members(
    reader: NodeReader, group: str, entry: Entry, listed: set[str], owner: dict[str, str]
) -> tuple[str, ...]:
    where = f"group '{group}'"
    if not isinstance(entry.value, SequenceNode) or not entry.value.value:
        got = "an empty list" if isinstance(entry.value, SequenceNode) else None
        got = got or reader.kind(entry.value)
        reader.error(entry.key_line, f"{where} must be a list of resources, got {got}")
        return ()
    members: list[str] = []
    for item in entry.value.value:
        value = reader.scalar(item) if isinstance(item, ScalarNode) else None
        line = line_of(item)
        if not isinstance(value, str):
            reader.error(line, f"{where}: member {reader.kind(item)} is not a resource name")
        elif value not in listed:
            reader.error(line, f"{where}: unknown resource '{value}' (not under resources:)")
        elif value in members:
            reader.error(line, f"{where}: resource '{value}' is listed twice")
        elif value in owner:
            first = owner[value]
            one = "a resource is in one group at most"
            reader.error(line, f"resource '{value}' is in groups '{first}' and '{group}' ({one})")
        else:
            members.append(value)
            owner[value] = group
    return tuple(members)
