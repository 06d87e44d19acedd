"""The small JSONPath subset of `shadow.ignore`: which fields of a response may differ.

Grammar: `$` followed by any number of steps, each one of

- `.name`  a member of an object (`name`: a letter or `_`, then letters, digits, `_`, `-`)
- `.@name` an attribute of an XML element (in a JSON document: the member named `@name`)
- `[*]`    every item of a list
- `[N]`    the item at index N (0-based) of a list

>>> parse("$.results[*].href")
('results', '*', 'href')
>>> Ignore.compile(["$.meta.generated_at"]).child("meta").child("generated_at").ignored
True

A path names a node and everything below it: `$.meta` ignores the whole `meta` object, `$`
ignores the whole body. Filters, slices, recursive descent (`..`) and quoted names are not
supported; a path outside the subset is rejected when routes.yaml is validated.

The same steps name the nodes of an XML document (`proxy.migration.xmldiff`): `$` is the root
element, `.name` a child element by its local name, `.name[N]` the Nth (0-based) of the children
named `name` when there are several, `.@name` an attribute. Walking an XML document
(`Ignore.element`), `.name` without an index names every child called `name`, and a child that is
the only one of its name is also its name's `[0]`, so `[*]` covers a list of one item:

>>> parse("$.tags.list-item[1]"), parse("$.@version")
(('tags', 'list-item', 1), ('@version',))
>>> Ignore.compile(["$.results.list-item[*].href"]).element("results", 0).element(
...     "list-item", 0).element("href", 0).ignored
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Step = str | int  # a member or element name, `@` and an attribute name, an index, or WILDCARD
WILDCARD = "*"
_STEP = re.compile(r"\.(@?[A-Za-z_][A-Za-z0-9_-]*)|\[(\*|[0-9]+)\]")


class JSONPathError(ValueError):
    """Not a path of the supported subset."""


def parse(text: str) -> tuple[Step, ...]:
    """`"$.a[2][*].b"` -> `("a", 2, "*", "b")`; raises JSONPathError outside the subset."""
    if not text.startswith("$"):
        raise JSONPathError(f"{text!r} does not start with $")
    steps: list[Step] = []
    position = 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise JSONPathError(f"{text!r}: unexpected {text[position:]!r}")
        name, index = match.groups()
        if name is not None:
            steps.append(name)
        else:
            steps.append(WILDCARD if index == "*" else int(index))
        position = match.end()
    return tuple(steps)


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except JSONPathError:
        return False
    return True


def format_path(steps: Iterable[Step]) -> str:
    """`("results", 3, "email")` -> `"$.results[3].email"` (how differences are named)."""
    parts = ["$"]
    for step in steps:
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(parts)


def step_matches(pattern: Step, step: Step) -> bool:
    """A pattern step against a concrete step: a name, an index, or `[*]` for any index."""
    if pattern == WILDCARD:
        return isinstance(step, int)
    return type(pattern) is type(step) and pattern == step


@dataclass(frozen=True)
class Ignore:
    """The ignore paths still in play at one node of a document, as the remaining steps.

    Compiled once per routing table; walking a document only filters these tuples.
    """

    suffixes: tuple[tuple[Step, ...], ...] = ()

    @classmethod
    def compile(cls, paths: Iterable[str]) -> Ignore:
        return cls(tuple(parse(path) for path in paths))

    @property
    def ignored(self) -> bool:
        """True when a path ends at this node: it and everything below it are ignored."""
        return any(not suffix for suffix in self.suffixes)

    def child(self, step: Step) -> Ignore:
        """The paths still in play one step down (a member name or a list index)."""
        if not self.suffixes:
            return self
        return Ignore(tuple(s[1:] for s in self.suffixes if s and step_matches(s[0], step)))

    def element(self, name: str, index: int) -> Ignore:
        """The paths still in play at an XML child element: the `index`th (0-based) of the
        children named `name`. A path's `.name` followed by `[N]` or `[*]` takes that index;
        `.name` followed by anything else names every child called `name`."""
        if not self.suffixes:
            return self
        kept: list[tuple[Step, ...]] = []
        for suffix in self.suffixes:
            if not suffix or not step_matches(suffix[0], name):
                continue
            rest = suffix[1:]
            if not rest or not (rest[0] == WILDCARD or isinstance(rest[0], int)):
                kept.append(rest)
            elif step_matches(rest[0], index):
                kept.append(rest[1:])
        return Ignore(tuple(kept))


NOTHING_IGNORED = Ignore()
