"""The API's two body formats, JSON (the default) and XML: which one a request asks for, and
XML written and read by hand.

A request asks for XML with ``?format=xml`` (``?format=json`` asks for JSON; the parameter
beats ``Accept``) or with an ``Accept`` header that rates ``application/xml`` or ``text/xml``
above ``application/json``; anything else gets JSON. A body is XML when its ``Content-Type``
is ``application/xml`` or ``text/xml``, else it is read as JSON. An answer whose format
``Accept`` chose says ``Vary: Accept`` (``accept_decides``), so a shared cache keeps the JSON
and XML of one URL apart (RFC 9110 section 12.5.5). The XML shape is
openapi.yaml's (see its description): ``<root>`` holds the data, keys are element names, list
items are ``<list-item>``, null is an empty element, booleans are ``true``/``false``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any
from xml.parsers import expat

JSON = "json"
XML = "xml"
FORMATS = (JSON, XML)
XML_TYPES = ("application/xml", "text/xml")
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
LIST_ITEM = "list-item"

_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# What XML 1.0 cannot carry (controls but tab, LF and CR; surrogates; U+FFFE, U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


def media_ranges(accept: str) -> list[tuple[str, float]]:
    """The ranges of an Accept header with their q, lower case; a range without a slash or
    with a q that is not 0 to 1 (three decimals at most) is left out.

    >>> media_ranges("application/xml;q=0.5, */*; charset=x, text/html;q=2")
    [('application/xml', 0.5), ('*/*', 1.0)]
    """
    ranges = []
    for item in accept.split(","):
        media_range, *params = item.split(";")
        media_range = media_range.strip().lower()
        q = "1"
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = value.strip()
        if "/" in media_range and _QVALUE.fullmatch(q):
            ranges.append((media_range, float(q)))
    return ranges


def quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """q of `media_type`: that of its most specific range (``a/b`` over ``a/*`` over
    ``*/*``; the highest q among equally specific ones), 0 when none matches."""
    kind = media_type.split("/")[0]
    for wanted in (media_type, kind + "/*", "*/*"):
        found = [q for media_range, q in ranges if media_range == wanted]
        if found:
            return max(found)
    return 0.0


def preferred_format(accept: str | None) -> str:
    """XML when Accept rates it above JSON; JSON otherwise, ties and no match included.

    >>> preferred_format("application/json, application/xml"), preferred_format("text/xml")
    ('json', 'xml')
    """
    ranges = media_ranges(accept or "")
    xml = max(quality(ranges, media_type) for media_type in XML_TYPES)
    return XML if xml > quality(ranges, "application/json") else JSON


def unknown_format(format_param: str | None) -> bool:
    """Whether ``?format=`` names a format the API does not have (absent or empty: no)."""
    return bool(format_param) and format_param not in FORMATS


def response_format(format_param: str | None, accept: str | None) -> str:
    """The format of an answer: ``?format=`` when it names one, else Accept's preference."""
    return format_param if format_param in FORMATS else preferred_format(accept)


def accept_decides(format_param: str | None) -> bool:
    """Whether ``Accept`` chose the format of an answer: ``?format=`` names none (absent, empty
    or unknown), so the answer varies on Accept."""
    return format_param not in FORMATS


def is_xml(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is XML (parameters and case aside)."""
    return (content_type or "").split(";")[0].strip().lower() in XML_TYPES


def to_xml(data: Any) -> bytes:
    """`data` (JSON-like) as an XML document.

    >>> to_xml({"tags": ["a&b"], "ok": True, "note": None})[39:]
    b'<root><tags><list-item>a&amp;b</list-item></tags><ok>true</ok><note></note></root>'
    """
    parts = [DECLARATION, "<root>"]
    write_value(parts, data)
    parts.append("</root>")
    return "".join(parts).encode("utf-8")


def write_value(parts: list[str], value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            write_element(parts, str(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            write_element(parts, LIST_ITEM, item)
    elif value is None:
        return
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, int | float):
        parts.append(json.dumps(value))
    else:
        parts.append(escape(str(value)))


def write_element(parts: list[str], name: str, value: Any) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not an XML element name: {name!r}")
    parts.append(f"<{name}>")
    write_value(parts, value)
    parts.append(f"</{name}>")


def escape(text: str) -> str:
    """Text content: ``&``, ``<``, ``>`` escaped, CR as ``&#13;`` (a parser reads a bare one
    as LF), what XML 1.0 cannot carry as U+FFFD; quotes stay (there are no attributes)."""
    text = _NOT_XML.sub("\ufffd", text)
    return "".join(_ESCAPES.get(char, char) for char in text)


def refuse_doctype(*args: object) -> None:
    raise ValueError("DTDs are not accepted")


def element_name(name: str) -> str:
    """expat's ``uri}local`` as ElementTree writes it: ``{uri}local``."""
    return "{" + name if "}" in name else name


def parse_xml(body: bytes) -> ET.Element:
    """The document's root, read by expat, which stops at ``<!DOCTYPE``: no DTD, so no entity
    is ever declared or expanded. (ElementTree's own parser, told the same through its
    target's ``doctype()``, lets expat go on expanding entities to expat's own limit.)"""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.StartElementHandler = lambda name, attributes: builder.start(element_name(name), {})
    parser.EndElementHandler = lambda name: builder.end(element_name(name))
    parser.CharacterDataHandler = builder.data
    parser.Parse(body, True)
    return builder.close()


def from_xml(body: bytes) -> dict[str, Any] | None:
    """A request body read as XML: the object its root holds, or None when it is not
    well-formed, has a DTD, or does not hold an object.

    Every leaf is text (an empty element is ``""``); an element whose children are all
    ``<list-item>`` is a list; any other element with children is an object (a later child
    of the same name wins); attributes and text between child elements are ignored.

    >>> from_xml(b"<root><travellers>3</travellers><tags><list-item/></tags></root>")
    {'travellers': '3', 'tags': ['']}
    """
    try:
        root = parse_xml(body)
    except (expat.ExpatError, ValueError, LookupError):
        return None
    data = element_value(root)
    if isinstance(data, str) and data.strip() == "":
        return {}
    return data if isinstance(data, dict) else None


def element_value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    if all(child.tag == LIST_ITEM for child in children):
        return [element_value(child) for child in children]
    return {child.tag: element_value(child) for child in children}
