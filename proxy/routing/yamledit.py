"""The one-line edit of routes.yaml text: send one resource to another backend, keep every
other byte.

The YAML node marks (`proxy.routing.nodes`) locate the one scalar to replace (the short form
`bookings: drf`, or the `backend:` of a long-form entry), so comments, order, quoting and blank
lines stay as they were. A resource not listed is added under `resources:`.
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
        return _add_entry(text, resources, resource, backend)
    value = entry[1]
    if isinstance(value, MappingNode):
        inner = _lookup(value, "backend")
        if inner is None:
            raise EditConflict(f"resource '{resource}' has no 'backend' key")
        value = inner[1]
    if not isinstance(value, ScalarNode):
        raise EditConflict(f"resource '{resource}' has no backend value to replace")
    return _replace(text, value, _scalar_text(value, backend))


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


def _add_entry(text: str, resources: MappingNode, resource: str, backend: str) -> str:
    if resources.flow_style or not resources.value:
        if not resources.value:
            return _replace(text, resources, f"{{{resource}: {backend}}}")
        end = resources.value[-1][1].end_mark.index
        return text[:end] + f", {resource}: {backend}" + text[end:]
    indent = " " * resources.value[0][0].start_mark.column
    last = _last_line(resources)
    return _insert_after_line(text, last, f"{indent}{resource}: {backend}\n")


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
