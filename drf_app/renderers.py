"""XML answers: DRF's JSON data written as openapi.yaml's XML shape, with Django's XML writer.

>>> XMLRenderer().render({"id": 1, "tags": ["a&b"], "ok": True, "note": None})[39:]
b'<root><id>1</id><tags><list-item>a&amp;b</list-item></tags><ok>true</ok><note></note></root>'

The bytes are legacy's (`legacy_flask.formats.to_xml`); drf_app/MIGRATION_NOTES.md lists where
Django's writer and rest_framework_xml had to be told otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from io import StringIO
from typing import Any
from xml.sax.xmlreader import AttributesImpl

from django.utils.xmlutils import SimplerXMLGenerator
from rest_framework.renderers import BaseRenderer

ROOT = "root"
LIST_ITEM = "list-item"
CHARSET = "utf-8"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# What XML 1.0 cannot carry (controls but tab, LF and CR; surrogates; U+FFFE, U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CR = re.compile("(\r)")
NO_ATTRIBUTES: AttributesImpl[str] = AttributesImpl({})


class XMLWriter(SimplerXMLGenerator):
    """Django's writer (declaration, `&`, `<`, `>` escaped, `<x></x>` for empty elements) with
    text any XML 1.0 parser reads back as written: what XML 1.0 cannot carry becomes U+FFFD
    (Django would raise), a carriage return is `&#13;` (a parser reads a bare one as LF)."""

    def characters(self, content: str) -> None:
        for part in _CR.split(_NOT_XML.sub("\ufffd", content)):
            if part == "\r":
                # Written as is: the character reference, not a text to escape.
                self.ignorableWhitespace("&#13;")
            else:
                super().characters(part)

    def element(self, name: str, value: Any) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not an XML element name: {name!r}")
        self.startElement(name, NO_ATTRIBUTES)
        self.value(value)
        self.endElement(name)

    def value(self, value: Any) -> None:
        """Objects as child elements by key, lists as `<list-item>`s, None as nothing,
        booleans as `true`/`false`, numbers as their JSON text, anything else as str()."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                self.element(str(key), item)
        elif isinstance(value, list | tuple):
            for item in value:
                self.element(LIST_ITEM, item)
        elif value is None:
            return
        elif isinstance(value, bool):
            self.characters("true" if value else "false")
        elif isinstance(value, int | float):
            self.characters(json.dumps(value))
        else:
            self.characters(str(value))


class XMLRenderer(BaseRenderer):
    media_type = "application/xml"
    format = "xml"
    charset = CHARSET

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The document for `data`; no data (an OPTIONS answer) is an empty body."""
        if data is None:
            return b""
        stream = StringIO()
        writer = XMLWriter(stream, CHARSET)
        writer.startDocument()
        writer.element(ROOT, data)
        writer.endDocument()
        return stream.getvalue().encode(CHARSET)
