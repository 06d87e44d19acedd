"""Nested routing keys: `tours/*/departures` routes `/tours/{id}/departures` (and below it) apart
from `tours`. Pure: the key grammar, the path's segments and the trie `RouteTable` consults.

A nested key is segments joined by `/`: the first a literal name (the resource family, the key
`routing_key` reads), each further one a literal name or `*`. A literal matches that exact
segment; `*` matches exactly one segment that is not empty (`/tours//departures` is not a tour's
departures: Flask merges the slashes into `/tours/departures`). A key also matches every path
below it.

Precedence: of the keys matching a path, the longest wins; at equal length, the one with a
literal where the other has `*`, at the first position where they differ. That orders every two
distinct keys that can match the same path: at each position two such keys are the same literal,
both `*`, or a literal and `*` (two different literals never match one segment), so two keys of
one length that never differ by a literal against `*` are the same key, which the parser already
refuses as a duplicate. No overlap is left for `strangler validate` to report.

    >>> trie = build_trie({"tours": "T", "tours/*/departures": "D", "tours/7/departures": "7"})
    >>> [trie.find(path_segments(p)) for p in ("/tours/3/departures/1", "/tours/7/departures")]
    ['D', '7']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")
STAR = "*"
ABSOLUTE_FORM_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def is_nested(name: str) -> bool:
    return "/" in name


def path_segments(target: str) -> list[str] | None:
    """Every segment of the path the backends resolve, read as `routing_key` reads the first
    (its docstring has the rules): the path of the target (after an absolute form's authority),
    cut at `?` or `#`, percent-decoded once (`%2F` included), split on "/" as it is. The first
    item is always `routing_key(target)`; None for a target of no form both gateways read alike.

    >>> path_segments("/tours/7/departures/?page=2")
    ['tours', '7', 'departures', '']
    >>> path_segments("/tours%2F7%2Fdepartures"), path_segments("http://h/tours/%37")
    (['tours', '7', 'departures'], ['tours', '7'])
    >>> path_segments("/tours/a%3Fb#x"), path_segments("*"), path_segments("x:y")
    (['tours', 'a?b'], [''], None)
    """
    if target[:1] != "/":
        return _non_origin_segments(target)
    target = target.split("?", 1)[0]
    if "#" in target:
        target = target.split("#", 1)[0]
    if "%" in target:
        target = unquote(target)
    return target[1:].split("/")


def _non_origin_segments(target: str) -> list[str] | None:
    """The segments of an asterisk-form or absolute-form target; None for anything else."""
    if target == "*":
        return [""]
    form = ABSOLUTE_FORM_RE.match(target)
    if form is None:
        return None
    path = target[form.end() :]
    return path_segments(path) if path.startswith("/") else [""]


class Node(Generic[T]):
    """One segment of the trie: the value of the key ending here, if any, and the segments that
    may follow (by literal, and `*`). Built once per table, never changed after (a plain class,
    not a frozen dataclass: mypyc compiles it, proxy/speedups.py)."""

    __slots__ = ("value", "literal", "star", "depth", "needs", "here")

    def __init__(
        self,
        value: T | None,
        literal: Mapping[str, Node[T]],
        star: Node[T] | None,
        depth: int,
        needs: int,
    ) -> None:
        self.value = value
        self.literal = literal
        self.star = star
        self.depth = depth  # the segments a path has read on reaching this node (the root: 1)
        # the fewest segments, this node's own included, a key here or below takes
        self.needs = needs
        # (depth, value) when a key ends here
        self.here: tuple[int, T] | None = None if value is None else (depth, value)

    def find(self, segments: Sequence[str]) -> T | None:
        """The value of the most specific key matching `segments` (all of the path's, the
        root's own first), this node's own value when no deeper key matches."""
        found = self.best(segments)
        return None if found is None else found[1]

    def best(self, segments: Sequence[str]) -> tuple[int, T] | None:
        """`(depth, value)` of the most specific key at or below this node matching `segments`.

        Depth first, literal before `*`: a key found under the literal keeps its place against
        one found under `*` unless that one is strictly deeper. A subtree whose keys need more
        segments than are left is not entered.
        """
        depth = self.depth
        left = len(segments) - depth
        if left > 0:
            segment = segments[depth]
            child = self.literal.get(segment)
            found = child.best(segments) if child is not None and child.needs <= left else None
            child = self.star
            if child is not None and child.needs <= left and segment:
                other = child.best(segments)
                if other is not None and (found is None or other[0] > found[0]):
                    found = other
            if found is not None:
                return found
        return self.here


def build_trie(values: Mapping[str, T]) -> Node[T]:
    """The trie of keys sharing one first segment (a plain key's value at the root, if listed).

    >>> build_trie({"a/*": 1, "a/b/c": 2}).find(["a", "b", "c", "d"])
    2
    """
    root: _Draft[T] = _Draft()
    for key, value in values.items():
        draft = root
        for segment in key.split("/")[1:]:
            draft = draft.children.setdefault(segment, _Draft())
        draft.value = value
    return root.frozen()


class _Draft(Generic[T]):
    """A node while the trie is built."""

    def __init__(self) -> None:
        self.value: T | None = None
        self.children: dict[str, _Draft[T]] = {}

    def frozen(self, depth: int = 1) -> Node[T]:
        children = {key: draft.frozen(depth + 1) for key, draft in self.children.items()}
        below = min((child.needs for child in children.values()), default=None)
        needs = 1 if self.value is not None or below is None else below + 1
        star = children.pop(STAR, None)
        return Node(self.value, children, star, depth, needs)


def nested_tries(values: Mapping[str, T]) -> dict[str, Node[T]]:
    """A trie per first segment that has nested keys, its root holding the value of the plain
    key of that segment if there is one.

    >>> sorted(nested_tries({"a": 0, "a/*": 1, "b": 2}))
    ['a']
    """
    families: dict[str, dict[str, T]] = {}
    for key, value in values.items():
        if is_nested(key):
            families.setdefault(key.partition("/")[0], {})[key] = value
    for first, family in families.items():
        if first in values:
            family[first] = values[first]
    return {first: build_trie(family) for first, family in families.items()}
