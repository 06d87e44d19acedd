"""The one-line edit of routes.yaml text: send one resource to another backend, keep every
other byte.

The YAML node marks (`proxy.routing.nodes`) locate the one scalar to replace (the short form
`bookings: drf`, or the `backend:` of a long-form entry), so comments, order, quoting and blank
lines stay as they were. A resource not listed is added under `resources:`. The long-form
values of an entry (a rollout's progress, its canary and shadow) and its lists (a pinned client)
are edited the same way.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy.routing.nodes import compose_nodes


class EditError(ValueError):
    """The change asked for is not possible (unknown backend, bad resource name)."""


class EditConflict(EditError):
    """The table cannot be edited as it stands (a symlink, unwritable, an unexpected edit)."""


def set_backend(text: str, resource: str, backend: str) -> str:
    """`text` with `resource` sent to `backend`, every other byte unchanged (or one entry added).

    >>> set_backend("resources:\\n  bookings: legacy  # note\\n", "bookings", "drf")
    'resources:\\n  bookings: drf  # note\\n'
    """
    root = compose_nodes(text)
    if not isinstance(root, MappingNode):
        raise EditConflict("routes file has no top-level mapping")
    found = _lookup(root, "resources")
    if found is None:
        return _with_newline(text) + f"resources:\n  {resource}: {backend}\n"
    key, resources = found
    if isinstance(resources, ScalarNode):
        return _fill_empty(text, key, resources, resource, backend)
    if not isinstance(resources, MappingNode):
        raise EditConflict("'resources' is not a mapping")
    entry = _lookup(resources, resource)
    if entry is None:
        return _add_key(text, resources, resource, backend)
    value = entry[1]
    if isinstance(value, MappingNode):
        inner = _lookup(value, "backend")
        if inner is None:
            raise EditConflict(f"resource '{resource}' has no 'backend' key")
        value = inner[1]
    if not isinstance(value, ScalarNode):
        raise EditConflict(f"resource '{resource}' has no backend value to replace")
    return _replace(text, value, _scalar_text(value, backend))


def set_canary_percent(text: str, resource: str, percent: float) -> str:
    """`text` with the `percent` of `resource`'s canary replaced, every other byte unchanged.

    >>> text = "resources:\\n  bookings:\\n    canary: {backend: drf, percent: 25}  # new\\n"
    >>> set_canary_percent(text, "bookings", 0).splitlines()[-1]
    '    canary: {backend: drf, percent: 0}  # new'
    """
    node: Node | None = compose_nodes(text)
    for key in ("resources", resource, "canary", "percent"):
        found = _lookup(node, key) if isinstance(node, MappingNode) else None
        node = None if found is None else found[1]
    if not isinstance(node, ScalarNode):
        raise EditConflict(f"resource '{resource}' has no canary percent to replace")
    return _replace(text, node, _scalar_text(node, f"{percent:g}"))


def _lookup(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    for key_node, value in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def _replace(text: str, node: Node, new: str) -> str:
    return text[: node.start_mark.index] + new + text[node.end_mark.index :]


def _scalar_text(node: ScalarNode, value: str) -> str:
    """Keep the quoting style of the value being replaced."""
    quote = node.style if node.style in ("'", '"') else ""
    return f"{quote}{value}{quote}"


def _fill_empty(text: str, key: Node, node: ScalarNode, resource: str, backend: str) -> str:
    """`resources:` with no value (or `~`): give it its first entry."""
    if node.start_mark.index != node.end_mark.index:
        return _replace(text, node, f"{{{resource}: {backend}}}")
    indent = " " * (key.start_mark.column + 2)
    return _insert_after_line(text, key.start_mark.line, f"{indent}{resource}: {backend}\n")


def _last_line(node: Node) -> int:
    """0-based index of the last line holding part of `node`."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1][1])
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1])
    end = node.end_mark
    if isinstance(node, ScalarNode) and node.style in ("|", ">") and end.column == 0:
        return int(end.line) - 1
    return int(end.line)


def _insert_after_line(text: str, line: int, new_line: str) -> str:
    lines = text.splitlines(keepends=True)
    if line < len(lines) and not lines[line].endswith(("\n", "\r")):
        lines[line] += "\n"
    lines.insert(line + 1, new_line)
    return "".join(lines)


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# -- the values of a long-form entry (a rollout's progress, its canary and shadow) ------------


def set_value(text: str, resource: str, path: tuple[str, ...], value: str) -> str:
    """`text` with `resources.<resource>.<path>` set to the YAML `value`, added when absent;
    the resource must be a long-form entry (a mapping), every other byte is kept.

    >>> set_value("resources:\\n  a:\\n    rollout:\\n      to: y\\n", "a", ("rollout", "state"),
    ...           "running")
    'resources:\\n  a:\\n    rollout:\\n      to: y\\n      state: running\\n'
    >>> set_value("resources:\\n  a:\\n    backend: x  # b\\n", "a", ("shadow",), "{backend: y}")
    'resources:\\n  a:\\n    backend: x  # b\\n    shadow: {backend: y}\\n'
    >>> set_value("resources:\\n  a: {backend: x, canary: {backend: y, percent: 1}}\\n", "a",
    ...           ("canary", "percent"), "5")
    'resources:\\n  a: {backend: x, canary: {backend: y, percent: 5}}\\n'
    """
    parent = _entry_mapping(text, resource)
    for key in path[:-1]:
        found = _lookup(parent, key)
        if found is None or not isinstance(found[1], MappingNode):
            raise EditConflict(f"resource '{resource}' has no '{key}' mapping")
        parent = found[1]
    key = path[-1]
    found = _lookup(parent, key)
    if found is None:
        return _add_key(text, parent, key, value)
    key_node, node = found
    if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
        return _replace(text, node, value)
    indent = " " * key_node.start_mark.column
    lines = text.splitlines(keepends=True)
    first, last = key_node.start_mark.line, _last_line(node)
    return "".join(lines[:first] + [f"{indent}{key}: {value}\n"] + lines[last + 1 :])


def remove_key(text: str, resource: str, key: str) -> str:
    """`text` without the `key` of the long-form entry of `resource` (unchanged when absent).

    >>> remove_key("resources:\\n  a:\\n    shadow:\\n      backend: y\\n    backend: x\\n",
    ...            "a", "shadow")
    'resources:\\n  a:\\n    backend: x\\n'
    >>> remove_key("resources:\\n  a: {backend: x, shadow: {backend: y}}\\n", "a", "shadow")
    'resources:\\n  a: {backend: x}\\n'
    """
    parent = _entry_mapping(text, resource)
    for index, (key_node, node) in enumerate(parent.value):
        if not (isinstance(key_node, ScalarNode) and key_node.value == key):
            continue
        if parent.flow_style:
            if index > 0:
                start = parent.value[index - 1][1].end_mark.index
                return text[:start] + text[node.end_mark.index :]
            if len(parent.value) == 1:
                return _replace(text, parent, "{}")
            end = parent.value[1][0].start_mark.index
            return text[: key_node.start_mark.index] + text[end:]
        lines = text.splitlines(keepends=True)
        first, last = key_node.start_mark.line, _last_line(node)
        return "".join(lines[:first] + lines[last + 1 :])
    return text


def _entry_mapping(text: str, resource: str) -> MappingNode:
    root = compose_nodes(text)
    found = _lookup(root, "resources") if isinstance(root, MappingNode) else None
    entry = _lookup(found[1], resource) if found and isinstance(found[1], MappingNode) else None
    if entry is None or not isinstance(entry[1], MappingNode):
        raise EditConflict(f"resource '{resource}' is not a long-form entry (a mapping)")
    return entry[1]


def _add_key(text: str, parent: MappingNode, key: str, value: str) -> str:
    if parent.flow_style or not parent.value:
        if not parent.value:
            return _replace(text, parent, f"{{{key}: {value}}}")
        end = parent.value[-1][1].end_mark.index
        return text[:end] + f", {key}: {value}" + text[end:]
    indent = " " * parent.value[0][0].start_mark.column
    return _insert_after_line(text, _last_line(parent), f"{indent}{key}: {value}\n")


# -- a list item of an entry (a pinned client) --------------------------------------------------


def add_list_item(text: str, resource: str, key: str, item: str) -> str:
    """`text` with the flow YAML `item` appended to the list `resources.<resource>.<key>`; the
    list, and the long form of a short entry, are made when absent. Every other byte is kept
    (a short entry's value moves from its line to a `backend:` line below it).

    >>> add_list_item("resources:\\n  a: x  # n\\n", "a", "clients", "{m: 1}")
    'resources:\\n  a:  # n\\n    backend: x\\n    clients:\\n      - {m: 1}\\n'
    >>> add_list_item("resources:\\n  a:\\n    clients:\\n    - {m: 1}\\n", "a", "clients",
    ...               "{m: 2}")
    'resources:\\n  a:\\n    clients:\\n    - {m: 1}\\n    - {m: 2}\\n'
    >>> add_list_item("resources: {a: x}\\n", "a", "clients", "{m: 1}")
    'resources: {a: {backend: x, clients: [{m: 1}]}}\\n'
    """
    root = compose_nodes(text)
    found = _lookup(root, "resources") if isinstance(root, MappingNode) else None
    resources = found[1] if found is not None else None
    if not isinstance(resources, MappingNode) or (entry := _lookup(resources, resource)) is None:
        raise EditConflict(f"resource '{resource}' is not listed")
    key_node, value = entry
    if isinstance(value, ScalarNode):
        return _long_form(text, resources, key_node, value, key, item)
    if not isinstance(value, MappingNode):
        raise EditConflict(f"resource '{resource}' is neither a backend name nor a mapping")
    listed = _lookup(value, key)
    if listed is None:
        if value.flow_style or not value.value:
            return _add_key(text, value, key, f"[{item}]")
        indent = " " * value.value[0][0].start_mark.column
        return _insert_after_line(text, _last_line(value), f"{indent}{key}:\n{indent}  - {item}\n")
    items = listed[1]
    if not isinstance(items, SequenceNode):
        raise EditConflict(f"'{key}' of resource '{resource}' is not a list")
    if items.flow_style or not items.value:
        if not items.value:
            return _replace(text, items, f"[{item}]")
        end = items.value[-1].end_mark.index
        return text[:end] + f", {item}" + text[end:]
    dash = " " * items.start_mark.column
    return _insert_after_line(text, _last_line(items), f"{dash}- {item}\n")


def _long_form(
    text: str, resources: MappingNode, name: Node, value: ScalarNode, key: str, item: str
) -> str:
    """A short entry (`name: backend`) made long with the list `key: [item]`: in a flow mapping
    `{backend: ..., key: [item]}`; in a block one, the value leaves the name's line (its comment
    stays) for a `backend:` line below it, then the list in block style."""
    backend = text[value.start_mark.index : value.end_mark.index]
    if resources.flow_style:
        return _replace(text, value, f"{{backend: {backend}, {key}: [{item}]}}")
    if value.start_mark.line != name.start_mark.line:
        raise EditConflict(f"resource '{name.value}' spans lines; make it a mapping by hand")
    lines = text.splitlines(keepends=True)
    line = int(name.start_mark.line)
    start = sum(len(before) for before in lines[:line])
    head = text[start : value.start_mark.index].rstrip()
    rest = lines[line][value.end_mark.index - start :]
    lines[line] = head + (rest if rest.strip() else rest.lstrip(" \t"))
    if not lines[line].endswith(("\n", "\r")):
        lines[line] += "\n"
    indent = " " * (name.start_mark.column + 2)
    lines.insert(line + 1, f"{indent}backend: {backend}\n{indent}{key}:\n{indent}  - {item}\n")
    return "".join(lines)
