"""One table of XML cases for both gateways' unit tests (legacy_flask.formats and drf_app's
negotiation, renderer and parser): the same input, the same expected answer, on both sides.
"""

from __future__ import annotations

from typing import Any

DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'

# Accept header -> the format of the answer.
ACCEPTS: list[tuple[str | None, str]] = [
    (None, "json"),
    ("", "json"),
    ("*/*", "json"),
    ("application/json", "json"),
    ("application/xml", "xml"),
    ("text/xml", "xml"),
    ("Application/XML", "xml"),
    ("application/xml; charset=utf-8", "xml"),
    ("application/json, application/xml", "json"),
    ("application/xml, application/json", "json"),
    ("application/xml;q=1, application/json;q=0.9", "xml"),
    ("application/json;q=0.5, application/xml;q=0.8", "xml"),
    ("application/json;q=0.8, text/xml;q=0.5", "json"),
    ("text/csv", "json"),
    ("text/html, application/xhtml+xml", "json"),
    ("text/*", "xml"),
    ("application/*", "json"),
    ("application/json;q=0, */*", "xml"),
    ("application/xml;q=0, */*", "json"),
    ("application/xml;q=0", "json"),
    ("*/*;q=0.5, application/xml;q=0.5", "json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "xml"),
    ("application/xml;q=abc", "json"),
    ("application/xml;q=1.5", "json"),
    ("application/xml;q=0.1234", "json"),
    ("application/xml;q=", "json"),
    ("application/xml;Q=0.9, application/json;q=0.8", "xml"),
    ("application/xml;q=0.5, application/xml;q=1, application/json;q=0.9", "xml"),
    ("xml", "json"),
    (",,;,application/xml", "xml"),
]

# openapi.yaml's example of the XML shape (its description), the last of DOCUMENTS.
OPENAPI_EXAMPLE = (
    b"<root><id>3</id><tour><id>1</id><href>http://h/tours/1</href></tour><amenities>"
    b"<list-item>wifi</list-item></amenities><note></note><ok>true</ok></root>"
)

# Data -> the XML document, after the declaration.
DOCUMENTS: list[tuple[Any, bytes]] = [
    ({}, b"<root></root>"),
    ({"id": 1, "name": "Inca Trail"}, b"<root><id>1</id><name>Inca Trail</name></root>"),
    ({"a": None, "b": "", "c": [], "d": {}}, b"<root><a></a><b></b><c></c><d></d></root>"),
    ({"ok": True, "no": False}, b"<root><ok>true</ok><no>false</no></root>"),
    ({"n": 5.5, "m": -2, "e": 1e100}, b"<root><n>5.5</n><m>-2</m><e>1e+100</e></root>"),
    ({"amount": "2598.00"}, b"<root><amount>2598.00</amount></root>"),
    (
        {"tags": ["a", None, 3]},
        b"<root><tags><list-item>a</list-item><list-item></list-item>"
        b"<list-item>3</list-item></tags></root>",
    ),
    (
        {"l": [[1, 2], []]},
        b"<root><l><list-item><list-item>1</list-item><list-item>2</list-item>"
        b"</list-item><list-item></list-item></l></root>",
    ),
    (
        {"c": {"id": 3, "href": "http://h/c/3?a=1&b=2"}},
        b"<root><c><id>3</id><href>http://h/c/3?a=1&amp;b=2</href></c></root>",
    ),
    (
        {"s": "<a href=\"x\">'&amp;'</a> ]]>"},
        b"<root><s>&lt;a href=\"x\"&gt;'&amp;amp;'&lt;/a&gt; ]]&gt;</s></root>",
    ),
    ({"s": "a\r\nb\tc\n"}, b"<root><s>a&#13;\nb\tc\n</s></root>"),
    (
        {"s": "\x00\x01\x08\x0b\x0c\x1f\x7f\ufffe\uffff\ud800"},
        "<root><s>\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\x7f\ufffd\ufffd\ufffd</s></root>".encode(),
    ),
    (
        {"s": "M\u00fcller \u65e5\u672c \U0001f600"},
        "<root><s>M\u00fcller \u65e5\u672c \U0001f600</s></root>".encode(),
    ),
    ([{"a": 1}, 2], b"<root><list-item><a>1</a></list-item><list-item>2</list-item></root>"),
    ("text", b"<root>text</root>"),
    (7, b"<root>7</root>"),
    ({"x-y.z_1": 1}, b"<root><x-y.z_1>1</x-y.z_1></root>"),
    (
        {
            "id": 3,
            "tour": {"id": 1, "href": "http://h/tours/1"},
            "amenities": ["wifi"],
            "note": None,
            "ok": True,
        },
        OPENAPI_EXAMPLE,
    ),
]

# What both gateways answer to an unexpected failure when XML is asked for.
SERVER_ERROR = DECLARATION + (
    b"<root><http_status_code>500</http_status_code><message>Internal server error.</message>"
    b"<errors></errors></root>"
)

# Keys that are no XML element name: rendering them is a programming error (ValueError).
BAD_NAMES = ["1a", "a b", "", "a:b", "<a>", "\u00e9"]

# Request body -> the object it holds, or None: 400 "Invalid XML body.".
BODIES: list[tuple[bytes, dict[str, Any] | None]] = [
    (b"<root><travellers>3</travellers></root>", {"travellers": "3"}),
    (b"<booking><travellers> 3 </travellers></booking>", {"travellers": " 3 "}),
    (b'<?xml version="1.0" encoding="utf-8"?>\n<root><a></a><b/></root>', {"a": "", "b": ""}),
    (b"<root>\n  <a>1</a>\n  <b>x</b>\n</root>\n", {"a": "1", "b": "x"}),
    (b"<root><a>1</a><a>2</a></root>", {"a": "2"}),
    (b"<root><a x='1'>t</a>stray</root>", {"a": "t"}),
    (b"<root><a><list-item>x</list-item><list-item/></a></root>", {"a": ["x", ""]}),
    (b"<root><a><b>1</b><list-item>2</list-item></a></root>", {"a": {"b": "1", "list-item": "2"}}),
    (b"<root><a><![CDATA[<&>]]>&amp;&#13;&#x41;</a></root>", {"a": "<&>&\rA"}),
    (b"<root><a>1<!-- c -->2</a><?pi x?></root>", {"a": "12"}),
    (b"<root/>", {}),
    (b"<root>  \n </root>", {}),
    (b"<root xmlns='urn:x'><a>1</a></root>", {"{urn:x}a": "1"}),
    (
        '<?xml version="1.0" encoding="iso-8859-1"?><r><a>\u00e9</a></r>'.encode("latin-1"),
        {"a": "\u00e9"},
    ),
    (
        '<?xml version="1.0" encoding="windows-1252"?><r><a>\u20ac</a></r>'.encode("cp1252"),
        {"a": "\u20ac"},
    ),
    (
        '<?xml version="1.0" encoding="utf-16"?><r><a>\u00e9</a></r>'.encode("utf-16"),
        {"a": "\u00e9"},
    ),
    (b"\xef\xbb\xbf<r><a>1</a></r>", {"a": "1"}),
    (b"<root>text</root>", None),
    (b"<root><list-item>1</list-item></root>", None),
    (b"", None),
    (b"   ", None),
    (b"{oops", None),
    (b'{"travellers": 3}', None),
    (b"<root><a>1</a>", None),
    (b"<root/><x/>", None),
    (b"<root><a>&nbsp;</a></root>", None),
    (b"<root><a>&#0;</a></root>", None),
    (b"<root><x:a>1</x:a></root>", None),
    (b"<!DOCTYPE root><root/>", None),
    (b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r>&x;</r>', None),
    (b'<!DOCTYPE r [<!ENTITY x "y">]><r><a>&x;</a></r>', None),
    (b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><a>&x;</a></r>', None),
    (b'<?xml version="1.0" encoding="shift_jis"?><r><a>1</a></r>', None),
    (b'<?xml version="1.0" encoding="no-such-codec"?><r><a>1</a></r>', None),
    (b'<?xml version="1.0" encoding="ascii"?><r><a>\xe9</a></r>', None),
    (b"<r><a>\xff</a></r>", None),
]


def billion_laughs(levels: int = 10) -> bytes:
    """The entity bomb: refused at `<!DOCTYPE`, before anything is expanded."""
    entities = [b'<!ENTITY l0 "lol">'] + [
        b'<!ENTITY l%d "%s">' % (level, b"&l%d;" % (level - 1) * 10) for level in range(1, levels)
    ]
    return b"<!DOCTYPE r [" + b"".join(entities) + b"]><r><a>&l%d;</a></r>" % (levels - 1)


# Content-Type -> whether the body is read as XML.
CONTENT_TYPES: list[tuple[str | None, bool]] = [
    (None, False),
    ("", False),
    ("application/json", False),
    ("application/xml", True),
    ("text/xml", True),
    ("Application/XML; charset=ISO-8859-1", True),
    ("text/xml;charset=utf-8", True),
    ("application/atom+xml", False),
    ("application/x-www-form-urlencoded", False),
    ("text/plain", False),
]


XML_TYPE = "application/xml; charset=utf-8"
# Answers whose format Accept chose, so each says `Vary: Accept`, on either gateway run as a
# process: method, path, request headers, then the status and Content-Type of the answer.
VARY_CASES: list[tuple[str, str, dict[str, str], int, str]] = [
    ("GET", "/bookings/1", {}, 200, "application/json"),
    ("GET", "/bookings/1", {"Accept": "application/xml"}, 200, XML_TYPE),
    ("GET", "/tours?page=2", {"Accept": "text/csv"}, 200, "application/json"),
    ("HEAD", "/tours/1", {"Accept": "text/xml"}, 200, XML_TYPE),
    ("OPTIONS", "/bookings", {}, 200, "application/json"),
    ("GET", "/nowhere", {}, 404, "application/json"),
    ("GET", "/nowhere", {"Accept": "application/xml"}, 404, XML_TYPE),
    ("GET", "/tours?page=x", {"Accept": "text/xml"}, 400, XML_TYPE),
    ("DELETE", "/bookings/1", {}, 405, "application/json"),
    ("GET", "/bookings/1", {"X-Application-Key": "wrong"}, 401, "application/json"),
    ("GET", "/tours?format=csv", {"Accept": "text/xml"}, 404, XML_TYPE),
]
