"""XML request bodies, read with defusedxml (no DTD, so no entity expansion of any kind).

Every leaf is text, as DRF's fields then read a JSON string: `<travellers>3</travellers>` is
`"3"`, an empty element is `""`. An element whose children are all `<list-item>` is a list, any
other element with children an object (a later child of the same name wins); attributes and
text between child elements are ignored; the root's name is not read.

>>> from io import BytesIO
>>> XMLParser().parse(BytesIO(b"<root><travellers>3</travellers><tags><list-item/></tags></root>"))
{'travellers': '3', 'tags': ['']}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml.ElementTree import fromstring
from rest_framework.parsers import BaseParser

from drf_app.errors import InvalidXMLBody

LIST_ITEM = "list-item"


def element_value(element: Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    if all(child.tag == LIST_ITEM for child in children):
        return [element_value(child) for child in children]
    return {child.tag: element_value(child) for child in children}


class XMLParser(BaseParser):
    """The body's object; InvalidXMLBody (400) when it is not well-formed XML, declares a DTD
    or holds no object (a root with only whitespace in it is `{}`). The encoding is the
    document's own (declaration or BOM, else UTF-8), whatever Content-Type's charset says."""

    media_type = "application/xml"

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            root = fromstring(stream.read(), forbid_dtd=True)
        except (ParseError, ValueError, LookupError) as exc:  # DTDForbidden is a ValueError
            raise InvalidXMLBody() from exc
        data = element_value(root)
        if isinstance(data, str) and data.strip() == "":
            return {}
        if not isinstance(data, dict):
            raise InvalidXMLBody()
        return data
