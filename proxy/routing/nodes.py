"""Reading YAML as marked nodes, collecting every error with its line.

`compose_nodes` gives the node tree of a text (its marks locate each value: the parser reports
lines with them, `proxy.routing.edit` rewrites one scalar in place). `NodeReader` reads mappings,
options and lists out of it against the `Rule`s of `proxy.routing.rules`, recording each problem
as `(line, message)`; `proxy.routing.parser` builds routes.yaml's reader on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy.routing.model import RoutesError
from proxy.routing.rules import Rule

T = TypeVar("T")


def compose_nodes(text: str, source: str = "routes.yaml") -> Node | None:
    """The YAML node tree (with marks), for the parser and for tools that edit the text in place.

    Invalid YAML raises `RoutesError`: `routes.yaml:3: invalid YAML: expected ...`.
    """
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise RoutesError((f"{source}:{line}: invalid YAML: {problem}",)) from exc
    except yaml.YAMLError as exc:
        raise RoutesError((f"{source}:1: invalid YAML: {exc}",)) from exc


def line_of(node: Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


@dataclass(frozen=True)
class Entry:
    """One key of a mapping: its name and line, and its value's node."""

    key: str
    key_line: int
    value: Node


class NodeReader:
    """Reads mappings, options and lists out of YAML nodes, collecting every problem with its
    line instead of stopping at the first; `messages()` gives them as `file:line: message`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[tuple[int, str]] = []
        self.constructor = yaml.SafeLoader("")

    def messages(self) -> tuple[str, ...]:
        ordered = sorted(self.errors, key=lambda item: item[0])
        return tuple(f"{self.source}:{line}: {message}" for line, message in ordered)

    def error(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return node
        return self.constructor.construct_object(node, deep=True)

    def kind(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        value = self.scalar(node)
        return "nothing" if value is None else repr(value)

    def entries(
        self, node: MappingNode, where: str, allowed: tuple[str, ...] | None, what: str = "key"
    ) -> dict[str, Entry]:
        """The mapping's entries by key; reports duplicate, non-scalar and unknown keys."""
        found: dict[str, Entry] = {}
        for key_node, value in node.value:
            line = line_of(key_node)
            if not isinstance(key_node, ScalarNode) or key_node.value == "":
                self.error(line, f"keys of {where} must be plain names")
                continue
            key = str(key_node.value)
            if key in found:
                first = found[key].key_line
                self.error(line, f"duplicate {what} '{key}' in {where} (first on line {first})")
            elif allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.error(line, f"unknown key '{key}' in {where} (expected one of: {expected})")
            else:
                found[key] = Entry(key, line, value)
        return found

    def mapping(self, entry: Entry, where: str) -> MappingNode | None:
        if isinstance(entry.value, MappingNode):
            return entry.value
        self.error(entry.key_line, f"{where} must be a mapping, got {self.kind(entry.value)}")
        return None

    def section(
        self, entry: Entry, where: str, keys: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, Entry] | None:
        """A nested mapping with a fixed set of keys, or None (errors reported)."""
        node = self.mapping(entry, where)
        if node is None:
            return None
        found = self.entries(node, where, keys)
        missing = [key for key in required if key not in found]
        for key in missing:
            self.error(entry.key_line, f"{where} is missing '{key}'")
        return None if missing else found

    def option(self, found: dict[str, Entry], key: str, where: str, rule: Rule, default: T) -> T:
        """The value of an optional key checked against `rule`; `default` when absent or bad."""
        entry = found.get(key)
        if entry is None:
            return default
        value = self.scalar(entry.value)
        if rule.accepts(value):
            return float(value) if isinstance(default, float) else value  # type: ignore[return-value]
        got = self.kind(entry.value)
        self.error(line_of(entry.value), f"{where}: {key} must be {rule.text}, got {got}")
        return default

    def items(self, entry: Entry, where: str, rule: Rule) -> list[Any]:
        """The items of a list option that pass `rule` (each bad one reported on its line)."""
        if not isinstance(entry.value, SequenceNode) or not entry.value.value:
            got = "an empty list" if isinstance(entry.value, SequenceNode) else None
            got = got or self.kind(entry.value)
            self.error(entry.key_line, f"{where}: {entry.key} must be a list, got {got}")
            return []
        good = []
        for item in entry.value.value:
            value = self.scalar(item)
            if rule.accepts(value):
                good.append(value)
            else:
                got = self.kind(item)
                self.error(line_of(item), f"{where}: {entry.key} item {got} is not {rule.text}")
        return good
