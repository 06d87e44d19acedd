"""How two XML answers differ, as trees: pure, over `xml.etree.ElementTree` documents.

`proxy.migration.diff` compares two bodies here when both were kept whole and both media types are
XML (`is_xml`). When a body is not well-formed or declares a DTD (`<!DOCTYPE`, `<!ENTITY`: no
entity is ever declared, so none is expanded, no billion laughs, no external entity), or when both
documents nest deeper than MAX_DEPTH elements along the same path (the walk recurses), the two
bodies are compared by bytes instead. Bodies are at most the capture cap (1 MiB): parsing is one
pass of expat, the walk one visit of each element both sides have.

What is compared, and the class of each difference (as `diff` classes JSON's):

- the root element's name: another root is one `schema` difference at `$` (nothing below it is
  compared);
- each element's attributes, as a mapping (their order does not matter): one only one side has is
  `schema`, another value `value`;
- each element's text: its character data outside its children (its text and its children's
  tails), joined. Whitespace-only text counts as none (indentation does not matter); any other
  text is compared exactly, spaces included: another text is `value`;
- its children, in order. The children of one name are matched by position (the first
  `list-item` with the first). A child of a name the other side has no child of is `schema`; one
  more or fewer child of a name both sides have is `value`, as a JSON list's length is (an empty
  list is an element without children, though, so no items against some is `schema`). The
  children both sides have, in another order, are one `schema` difference at their parent, whose
  values list their names in each side's order.

Names are compared with their namespace (`{uri}name`) and written by their local name;
comments, processing instructions and the XML declaration are not compared. Under a `generated`
path an element is compared by presence only, an attribute too.

Paths are the `shadow.ignore` subset's (`proxy.routing.jsonpath`), so `ignore`, learned noise and
`strangler diffs --noise` work on XML as on JSON: `$` is the root element, `.name` a child element
by its local name, `.name[N]` the Nth (0-based) of the children named `name` when either side has
several, `.@name` an attribute; a name outside the subset's grammar is quoted (`$["a.b"]`). An
ignore path's `.name` without an index names every child called `name`, and `[*]` also covers a
child that is the only one of its name. An element only one side has is shown as XML.

>>> live = b'<root v="1"><id>1</id><tags><list-item>a</list-item><list-item>b</list-item></tags>'
>>> shadow = b'<root><id>2</id><tags><list-item>a</list-item></tags><new/></root>'
>>> for d in compare_xml(live + b"</root>", shadow):
...     print(d.class_, d.text())
schema $.@v: removed, live="1"
value $.id: live="1" shadow="2"
value $.tags.list-item[1]: removed, live=<list-item>b</list-item>
schema $.new: added, shadow=<new />
"""

from __future__ import annotations

import copy
from xml.etree import ElementTree

from proxy.migration.differences import (
    ADDED,
    CHANGED,
    MAX_VALUE_CHARS,
    REMOVED,
    SCHEMA,
    TOP,
    VALUE,
    Difference,
    Node,
    Walk,
)

MAX_DEPTH = 100
XML_TYPES = frozenset({"application/xml", "text/xml"})
_REFUSED = (b"<!DOCTYPE", b"<!ENTITY")
Children = dict[tuple[str, int], ElementTree.Element]  # (name, its Nth of that name) -> child
Numbered = tuple[Children, dict[str, int]]  # and how many children each name has


def is_xml(media: str) -> bool:
    """Whether a media type (as `diff.media_type` writes it) is XML's.

    >>> is_xml("text/xml"), is_xml("application/atom+xml"), is_xml("application/json")
    (True, True, False)
    """
    return media in XML_TYPES or media.endswith("+xml")


class _NoDTD(ElementTree.TreeBuilder):
    """Builds the tree; refuses a document type declaration, in whatever encoding it is written."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise ValueError("a document type declaration is refused")


def parse(body: bytes) -> ElementTree.Element | None:
    """The root element of a document, or None: not well-formed, or declaring a DTD.

    >>> parse(b'<?xml version="1.0"?><a>1</a>').text, parse(b"<a>"), parse(b"<!DOCTYPE a><a/>")
    ('1', None, None)
    """
    if any(refused in body for refused in _REFUSED):
        return None
    parser = ElementTree.XMLParser(target=_NoDTD())
    try:
        parser.feed(body)
        root: ElementTree.Element = parser.close()
    except (ElementTree.ParseError, ValueError):
        return None
    return root


def compare_xml(live: bytes, shadow: bytes, root: Node = TOP) -> list[Difference] | None:
    """The differences of two XML bodies, classified, in document order (at most MAX_DIFFERENCES
    + 1, as `diff.compare`'s); None when either does not parse or both nest too deep."""
    documents = parse(live), parse(shadow)
    if documents[0] is None or documents[1] is None:
        return None
    walk = _XMLWalk()
    try:
        walk.root(documents[0], documents[1], root)
    except _TooDeep:
        return None
    return walk.result()


class _TooDeep(Exception):
    """A document nested deeper than MAX_DEPTH (the walk recurses)."""


class _XMLWalk(Walk):
    """The walk over two XML documents."""

    def root(self, live: ElementTree.Element, shadow: ElementTree.Element, node: Node) -> None:
        if live.tag != shadow.tag:
            self.add(node, CHANGED, f"<{live.tag}>", f"<{shadow.tag}>", SCHEMA)
        else:
            self.element(live, shadow, node, 0)

    def element(
        self, live: ElementTree.Element, shadow: ElementTree.Element, node: Node, depth: int
    ) -> None:
        if depth > MAX_DEPTH:
            raise _TooDeep
        if node.generated.ignored:
            return
        if live.attrib or shadow.attrib:
            self.attributes(live.attrib, shadow.attrib, node)
        texts = _text(live), _text(shadow)
        if texts[0] != texts[1]:
            self.add(node, CHANGED, texts[0], texts[1], VALUE)
        if len(live) or len(shadow):
            self.children((_numbered(live), _numbered(shadow)), node, depth)

    def attributes(self, live: dict[str, str], shadow: dict[str, str], node: Node) -> None:
        for name in [*live, *(name for name in shadow if name not in live)]:
            below = node.child(f"@{_local(name)}")
            if name not in shadow:
                self.add(below, REMOVED, live[name], None, SCHEMA)
            elif name not in live:
                self.add(below, ADDED, None, shadow[name], SCHEMA)
            elif live[name] != shadow[name] and not below.generated.ignored:
                self.add(below, CHANGED, live[name], shadow[name], VALUE)

    def children(self, numbered: tuple[Numbered, Numbered], node: Node, depth: int) -> None:
        (live, live_counts), (shadow, shadow_counts) = numbered
        repeated = {
            tag for counts in (live_counts, shadow_counts) for tag in counts if counts[tag] > 1
        }
        below = {
            key: node.element(_local(key[0]), key[1], key[0] in repeated)
            for key in [*live, *(key for key in shadow if key not in live)]
        }
        self.order(live, shadow, below, repeated, node)
        for key, child in below.items():
            if key not in shadow:
                missing = VALUE if key[0] in shadow_counts else SCHEMA
                self.add(child, REMOVED, _shown(live[key]), None, missing)
            elif key not in live:
                missing = VALUE if key[0] in live_counts else SCHEMA
                self.add(child, ADDED, None, _shown(shadow[key]), missing)
            else:
                self.element(live[key], shadow[key], child, depth + 1)

    def order(
        self,
        live: Children,
        shadow: Children,
        below: dict[tuple[str, int], Node],
        repeated: set[str],
        node: Node,
    ) -> None:
        """The children both sides have (and no path ignores) in another order: one difference."""
        if list(live) == list(shadow):
            return
        orders = [
            [key for key in one if key in other and not below[key].ignore.ignored]
            for one, other in ((live, shadow), (shadow, live))
        ]
        if orders[0] != orders[1]:
            names = [[_label(key, repeated) for key in order] for order in orders]
            self.add(node, CHANGED, names[0], names[1], SCHEMA)


def _numbered(parent: ElementTree.Element) -> Numbered:
    """Its children in order, each by its name and its index among the children of that name;
    and how many children each name has."""
    counts: dict[str, int] = {}
    found: Children = {}
    for child in parent:
        index = counts.get(child.tag, 0)
        found[child.tag, index] = child
        counts[child.tag] = index + 1
    return found, counts


def _local(name: str) -> str:
    """`{urn:x}name` -> `name`."""
    return name.rpartition("}")[2]


def _label(key: tuple[str, int], repeated: set[str]) -> str:
    return f"{_local(key[0])}[{key[1]}]" if key[0] in repeated else _local(key[0])


def _text(element: ElementTree.Element) -> str:
    """Its character data outside its children; "" when that is only whitespace."""
    text = element.text or ""
    if len(element):
        text = "".join([text, *(child.tail or "" for child in element)])
    return text if text.strip() else ""


class _Full(Exception):
    """The serializer wrote MAX_VALUE_CHARS characters: the rest is not needed."""


class _Prefix:
    """A text stream keeping what is written to it until MAX_VALUE_CHARS characters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= MAX_VALUE_CHARS:
            raise _Full
        return len(text)


def _shown(element: ElementTree.Element) -> str:
    """The element as XML without its tail, its first MAX_VALUE_CHARS characters at most."""
    alone = copy.copy(element)
    alone.tail = None
    prefix = _Prefix()
    try:
        ElementTree.ElementTree(alone).write(prefix, encoding="unicode")
    except _Full:
        return "".join(prefix.parts)[: MAX_VALUE_CHARS - 1] + "…"
    return "".join(prefix.parts)
