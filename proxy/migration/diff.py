"""How a live response and its shadow copy differ: pure functions over captured responses.

What is compared, in this order:

1. the status code;
2. three headers: the media type of `Content-Type` (parameters and case aside: a client parses
   the body by it), `Location` (exactly) and `Allow` (as a set of methods). No other header is
   compared: Date, Server, Content-Length or Connection legitimately differ between two stacks,
   and a different body is caught by the body comparison anyway;
3. the body. When both bodies were kept whole (at most the capture cap): if both media types
   are XML (`application/xml`, `text/xml`, `…+xml`), as XML trees (`proxy.migration.xmldiff`:
   root name, attributes, text, children in order); otherwise if both parse as JSON,
   structurally: objects member by member (member order does not matter), lists item by item,
   numbers by value (1 == 1.0), booleans apart from numbers. Otherwise (not JSON, XML that is not
   well-formed or declares a DTD, or a body over the cap) by SHA-256 of the bytes, so no path
   applies to it.

Each difference has a class; a comparison's class is the most severe of its differences
(`classify`), in the order of `CLASSES`:

- `status`: status codes of another class (201 vs 404); another code of the same class (200 vs
  201) is a `value` difference;
- `schema`: an object member only one side has, or a JSON value of another type (null, boolean,
  number, string, object, list: 1 and 1.0 are both numbers); in XML, an element or attribute
  only one side has, another root element, children in another order;
- `value`: the same shape with another value; an item only one side's list has (a list's length
  is data, not shape; in XML, one more or fewer child of a name both sides have); bodies
  compared by hash that differ;
- `header`: Content-Type's media type, Location or Allow;
- `noise`: a body difference under a declared `ignore` path (whatever its class: an ignored
  difference is reported, not hidden), or a `value` difference under a learned `noise` path
  (`proxy.migration.noise`: learned noise never hides a status or schema difference).

A dry-run write's shadow answer holds values of its own (another id): under the `generated` paths
values are compared by presence and JSON type only (an XML element or attribute by presence),
and when `generated` names any path Location is compared by presence only (it names the generated
resource).

Paths are written in the `shadow.ignore` subset (`proxy.routing.jsonpath`), so one can be pasted
as an ignore rule; a member name outside its grammar is shown quoted (`$["first name"]`) and
cannot be ignored. In an XML body `$` is the root element, `.name` a child element (by its local
name), `.name[N]` the Nth (0-based) of several children of that name, `.@name` an attribute:

>>> live = Captured.of(200, b"application/json", b'{"a": 1, "b": [1, 2]}')
>>> shadow = Captured.of(200, b"application/json", b'{"a": 2, "b": [1], "c": null}')
>>> [d.text() for d in compare(live, shadow)]
['$.a: live=1 shadow=2', '$.b[1]: removed, live=2', '$.c: added, shadow=null']
>>> [d.class_ for d in compare(live, shadow)], classify(compare(live, shadow))
(['value', 'value', 'schema'], 'schema')
>>> live = Captured.of(200, b"text/xml", b'<r v="2"><tags><list-item>a</list-item></tags></r>')
>>> shadow = Captured.of(200, b"text/xml", b'<r><tags><list-item>b</list-item></tags></r>')
>>> [(d.text(), d.class_) for d in compare(live, shadow, Ignore.compile(["$.@v"]))]
[('$.@v: removed, live="2"', 'noise'), ('$.tags.list-item: live="a" shadow="b"', 'value')]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from proxy.migration import xmldiff
from proxy.migration.differences import (
    ADDED,
    CHANGED,
    CLASSES,
    HEADER,
    MAX_DIFFERENCES,
    NOISE,
    REMOVED,
    SCHEMA,
    STATUS,
    VALUE,
    Difference,
    Node,
    Walk,
    classify,
    worst,
)
from proxy.routing.jsonpath import NOTHING_IGNORED, Ignore, Step

__all__ = [  # with what the readers of a comparison use of `proxy.migration.differences`
    "CLASSES",
    "GENERATED",
    "MAX_DIFFERENCES",
    "NOISE",
    "Captured",
    "Difference",
    "allowed_methods",
    "classify",
    "compare",
    "compare_bodies",
    "compare_headers",
    "diff_json",
    "json_type",
    "media_type",
    "worst",
]

# The fields a dry-run POST /bookings answers with values of its own: the new record's id, its
# href (built from the id) and date_created (the creating gateway's clock, UTC, to the second).
GENERATED = Ignore.compile(("$.id", "$.href", "$.date_created"))


@dataclass(frozen=True)
class Captured:
    """One side's response as far as the comparison needs it.

    `body` is None when the body was larger than the capture cap: then only `size` and `sha256`
    (of the whole body) are known. `location` and `allow`: those headers' values, empty when
    absent.
    """

    status: int
    content_type: bytes
    body: bytes | None
    size: int
    sha256: str
    location: bytes = b""
    allow: bytes = b""

    @classmethod
    def of(
        cls,
        status: int,
        content_type: bytes,
        body: bytes,
        *,
        location: bytes = b"",
        allow: bytes = b"",
    ) -> Captured:
        """A response kept whole (tests and small bodies)."""
        digest = hashlib.sha256(body).hexdigest()
        return cls(status, content_type, body, len(body), digest, location, allow)


def compare(
    live: Captured,
    shadow: Captured,
    ignore: Ignore = NOTHING_IGNORED,
    noise: Ignore = NOTHING_IGNORED,
    generated: Ignore = NOTHING_IGNORED,
) -> list[Difference]:
    """Every difference, classified: status, headers, then the body's (at most MAX_DIFFERENCES
    + 1, the last one saying how many more). `ignore`: the route's declared paths; `noise`: the
    learned ones; `generated`: what a dry-run write generates (`GENERATED` for the demo API).
    """
    found: list[Difference] = []
    if live.status != shadow.status:
        class_ = VALUE if live.status // 100 == shadow.status // 100 else STATUS
        found.append(Difference("status", CHANGED, live.status, shadow.status, class_))
    found.extend(compare_headers(live, shadow, bool(generated.suffixes)))
    found.extend(compare_bodies(live, shadow, Node((), ignore, noise, generated)))
    return found


def media_type(content_type: bytes) -> str:
    """`b"Application/JSON; charset=utf-8"` -> `"application/json"`."""
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def allowed_methods(allow: bytes) -> str:
    """`b"get,  Head ,GET"` -> `"GET, HEAD"`: the set of methods, sorted."""
    methods = {method.strip().upper() for method in allow.split(b",")} - {b""}
    return ", ".join(sorted(method.decode("latin-1") for method in methods))


def compare_headers(live: Captured, shadow: Captured, location_presence: bool) -> list[Difference]:
    """Content-Type's media type, Location (by presence only when `location_presence`), Allow."""
    found: list[Difference] = []
    live_type, shadow_type = media_type(live.content_type), media_type(shadow.content_type)
    if live_type != shadow_type:
        found.append(Difference("content-type", CHANGED, live_type, shadow_type, HEADER))
    locations = live.location.decode("latin-1"), shadow.location.decode("latin-1")
    if not (location_presence and all(locations)):
        found.extend(_header("location", *locations))
    found.extend(_header("allow", allowed_methods(live.allow), allowed_methods(shadow.allow)))
    return found


def _header(name: str, live: str, shadow: str) -> list[Difference]:
    """A header's difference ("" is absent): added, removed or changed."""
    if live == shadow:
        return []
    if not live:
        return [Difference(name, ADDED, None, shadow, HEADER)]
    if not shadow:
        return [Difference(name, REMOVED, live, None, HEADER)]
    return [Difference(name, CHANGED, live, shadow, HEADER)]


def compare_bodies(live: Captured, shadow: Captured, root: Node) -> list[Difference]:
    if live.body is not None and shadow.body is not None:
        if live.body == shadow.body:
            return []
        if xmldiff.is_xml(media_type(live.content_type)) and xmldiff.is_xml(
            media_type(shadow.content_type)
        ):
            found = xmldiff.compare_xml(live.body, shadow.body, root)
        else:
            found = _compare_json(live.body, shadow.body, root)
        if found is not None:
            return found
    elif live.sha256 == shadow.sha256:
        return []
    return [Difference("body", CHANGED, _digest(live), _digest(shadow), VALUE)]


def _digest(side: Captured) -> str:
    return f"<{side.size} bytes, sha256 {side.sha256[:16]}>"


def _compare_json(live: bytes, shadow: bytes, root: Node) -> list[Difference] | None:
    """Two bodies' differences as JSON documents; None when either is not JSON."""
    try:
        documents = json.loads(live), json.loads(shadow)
    except ValueError:
        return None
    return _JSONWalk().run(documents[0], documents[1], root)


def diff_json(
    live: Any,
    shadow: Any,
    ignore: Ignore = NOTHING_IGNORED,
    noise: Ignore = NOTHING_IGNORED,
    generated: Ignore = NOTHING_IGNORED,
) -> list[Difference]:
    """Structural differences of two JSON documents, classified, in document order.

    Past MAX_DIFFERENCES the most severe are kept and one last `...` difference counts the rest
    (its class: the worst of those).

    >>> [d.where for d in diff_json({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": 0})]
    ['$.a[1].b', '$.c']
    """
    return _JSONWalk().run(live, shadow, Node((), ignore, noise, generated))


class _JSONWalk(Walk):
    """The walk over two JSON documents."""

    def run(self, live: Any, shadow: Any, root: Node) -> list[Difference]:
        self.walk(live, shadow, root)
        return self.result()

    def walk(self, live: Any, shadow: Any, node: Node) -> None:
        if node.generated.ignored and json_type(live) == json_type(shadow):
            return
        if isinstance(live, dict) and isinstance(shadow, dict):
            for key in [*live, *(key for key in shadow if key not in live)]:
                self.pair(live, shadow, node.child(key), SCHEMA)
        elif isinstance(live, list) and isinstance(shadow, list):
            for index in range(max(len(live), len(shadow))):
                self.pair(live, shadow, node.child(index), VALUE)
        elif json_type(live) != json_type(shadow):
            self.add(node, CHANGED, live, shadow, SCHEMA)
        elif live != shadow:  # numbers by value (1 == 1.0): their type is the same
            self.add(node, CHANGED, live, shadow, VALUE)

    def pair(self, live: Any, shadow: Any, below: Node, missing: str) -> None:
        """A member or item of two containers; `missing`: the class when one side lacks it."""
        step = below.path[-1]
        if not _has(shadow, step):
            self.add(below, REMOVED, live[step], None, missing)
        elif not _has(live, step):
            self.add(below, ADDED, None, shadow[step], missing)
        else:
            self.walk(live[step], shadow[step], below)


def _has(container: dict[str, Any] | list[Any], step: Step) -> bool:
    return step in container if isinstance(container, dict) else int(step) < len(container)


def json_type(value: Any) -> str:
    """`null`, `boolean`, `number`, `string`, `object` or `list` (what `schema` compares)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "list"
