"""A difference between a live answer and its shadow, its class, and the bounded list a walk over
two documents keeps: shared by the JSON comparison (`proxy.migration.diff`) and the XML one
(`proxy.migration.xmldiff`).

A walk goes down both documents at once with a `Node` (its path and the declared, learned and
generated paths still in play there) and hands each difference to `Walk.add`, which classifies it
at its node and keeps the first MAX_DIFFERENCES of each class.

>>> Difference("$.a", CHANGED, 1, 2).text(), path_text(("results", 3, "first name", "@id"))
('$.a: live=1 shadow=2', '$.results[3]["first name"].@id')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.routing.jsonpath import NOTHING_IGNORED, Ignore, JSONPathError, Step, parse

MAX_DIFFERENCES = 50
MAX_VALUE_CHARS = 200
CHANGED, ADDED, REMOVED = "changed", "added", "removed"
STATUS, SCHEMA, VALUE, HEADER, NOISE = "status", "schema", "value", "header", "noise"
CLASSES = (STATUS, SCHEMA, VALUE, HEADER, NOISE)  # most severe first


def worst(classes: Iterable[str]) -> str | None:
    """The most severe of `classes` (None for none); ValueError for a name not in CLASSES.

    >>> worst(["noise", "value", "header"]), worst([])
    ('value', None)
    """
    return min(classes, key=CLASSES.index, default=None)


def classify(differences: Iterable[Difference]) -> str | None:
    """A comparison's class: its most severe difference's; None when nothing differs."""
    return worst(difference.class_ for difference in differences)


@dataclass(frozen=True)
class Difference:
    """`where` is `status`, `content-type`, `location`, `allow`, `body`, `...` (more than
    MAX_DIFFERENCES), or a path like `$.results[3].email` (`proxy.routing.jsonpath`: in an XML
    body `$.tags.list-item[1]` or `$.@version`).

    `kind`: changed (both sides have a value), added (only the shadow has one), removed (only the
    live side has one); the missing side's value is None. `class_`: one of CLASSES.
    """

    where: str
    kind: str
    live: Any
    shadow: Any
    class_: str = VALUE

    def text(self) -> str:
        """`$.a: live=1 shadow=2`, `$.b: added, shadow="x"`, `$.c: removed, live=[]` (JSON)."""
        if self.kind == ADDED:
            return f"{self.where}: added, shadow={_show(self.shadow)}"
        if self.kind == REMOVED:
            return f"{self.where}: removed, live={_show(self.live)}"
        return f"{self.where}: live={_show(self.live)} shadow={_show(self.shadow)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.where,
            "kind": self.kind,
            "live": self.live,
            "shadow": self.shadow,
            "class": self.class_,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Difference:
        """The inverse of `to_json`; data kept before classes existed reads as `value`."""
        return cls(
            data["field"], data["kind"], data["live"], data["shadow"], data.get("class", VALUE)
        )


def _show(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("<") else json.dumps(value)


@dataclass(frozen=True, slots=True)
class Node:
    """A node of the document: its path, and the declared, learned and generated paths still in
    play there."""

    path: tuple[Step, ...]
    ignore: Ignore
    noise: Ignore
    generated: Ignore

    def child(self, step: Step) -> Node:
        """A member or item of a JSON document, an attribute (`@name`) of an XML element."""
        paths = (self.ignore, self.noise, self.generated)
        return Node((*self.path, step), *(_down(below, step) for below in paths))

    def element(self, name: str, index: int, repeated: bool) -> Node:
        """An XML child element: the `index`th named `name`, `name[index]` in its path when
        `repeated` (either side has several children of that name)."""
        path = (*self.path, name, index) if repeated else (*self.path, name)
        if not (self.ignore.suffixes or self.noise.suffixes or self.generated.suffixes):
            return Node(path, self.ignore, self.noise, self.generated)  # no path in play
        paths = (self.ignore, self.noise, self.generated)
        return Node(path, *(p if p.ignored else p.element(name, index) for p in paths))

    def classify(self, base: str) -> str:
        """A body difference's class at this node: `base` unless declared or learned noise."""
        if self.ignore.ignored or (base == VALUE and self.noise.ignored):
            return NOISE
        return base


TOP = Node((), NOTHING_IGNORED, NOTHING_IGNORED, NOTHING_IGNORED)  # a root nothing is ignored at


def _down(paths: Ignore, step: Step) -> Ignore:
    """One step down; a node a path ends at keeps everything below it covered."""
    return paths if paths.ignored else paths.child(step)


class Walk:
    """What a walk over two documents found. Of each class the first MAX_DIFFERENCES differences
    are kept (with their order in the document), the others only counted."""

    def __init__(self) -> None:
        self.kept: dict[str, list[tuple[int, Difference]]] = {name: [] for name in CLASSES}
        self.more = dict.fromkeys(CLASSES, 0)
        self.seen = 0

    def add(self, node: Node, kind: str, live: Any, shadow: Any, base: str) -> None:
        class_ = node.classify(base)
        kept = self.kept[class_]
        if len(kept) < MAX_DIFFERENCES:
            difference = Difference(
                path_text(node.path), kind, _brief(live), _brief(shadow), class_
            )
            kept.append((self.seen, difference))
        else:
            self.more[class_] += 1
        self.seen += 1

    def result(self) -> list[Difference]:
        """The MAX_DIFFERENCES most severe in document order, then `...` if any was left out."""
        chosen: list[tuple[int, Difference]] = []
        left_out = dict(self.more)
        for name in CLASSES:
            taken = self.kept[name][: MAX_DIFFERENCES - len(chosen)]
            chosen.extend(taken)
            left_out[name] += len(self.kept[name]) - len(taken)
        found = [difference for _, difference in sorted(chosen, key=lambda pair: pair[0])]
        more = sum(left_out.values())
        if more:
            class_ = worst(name for name, count in left_out.items() if count) or VALUE
            found.append(Difference("...", CHANGED, f"<{more} more>", f"<{more} more>", class_))
        return found


def path_text(steps: Iterable[Step]) -> str:
    """`("results", 3, "first name")` -> `'$.results[3]["first name"]'`: a name outside the
    ignore grammar is quoted, so no text in the subset names it by mistake."""
    parts = ["$"]
    for step in steps:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if _plain(step) else f"[{json.dumps(step)}]")
    return "".join(parts)


def _plain(name: str) -> bool:
    """Whether `.name` is one member step of the ignore grammar (not `a.b`, `a[0]`, `1a`)."""
    try:
        return parse(f"$.{name}") == (name,)
    except JSONPathError:
        return False


def _brief(value: Any) -> Any:
    """The value itself, or `<first characters of its JSON…>` when that is long."""
    if isinstance(value, dict | list):
        text = json.dumps(value)
        if len(text) > MAX_VALUE_CHARS:
            return f"<{text[:MAX_VALUE_CHARS]}…>"
    elif isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return f"<{json.dumps(value)[:MAX_VALUE_CHARS]}…>"
    return value
