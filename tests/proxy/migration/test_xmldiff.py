"""proxy.migration.xmldiff: XML answers compared as trees through `diff.compare` (tables, no
sockets), safe parsing, paths in the ignore subset, learned noise; and one XML answer through the
real shadow rig."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy.migration.diff import MAX_DIFFERENCES, Captured, classify, compare
from proxy.migration.noise import NoiseBook, generalise
from proxy.migration.xmldiff import MAX_DEPTH, compare_xml, parse
from proxy.routing.jsonpath import NOTHING_IGNORED, Ignore
from tests.support.raw_http import RawRequest, canned, respond
from tests.support.shadow_rig import Rig, Start, rigs, routes

XML = b"application/xml"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
Row = tuple[str, str, object, object, str]  # where, kind, live, shadow, class


def xml(text: str, content_type: bytes = XML) -> Captured:
    return Captured.of(200, content_type, text.encode())


def found(live: str, shadow: str, ignore: Ignore = NOTHING_IGNORED, **paths: Ignore) -> list[Row]:
    differences = compare(xml(live), xml(shadow), ignore, **paths)
    return [(d.where, d.kind, d.live, d.shadow, d.class_) for d in differences]


def tour(*tags: str, href: str = "http://api/tours/1", root: str = "root") -> str:
    items = "".join(f"<list-item>{tag}</list-item>" for tag in tags)
    return f"{DECLARATION}<{root}><id>1</id><href>{href}</href><tags>{items}</tags></{root}>"


@pytest.mark.parametrize(
    ("live", "shadow"),
    [
        (tour("a", "b"), tour("a", "b")),
        ('<r a="1" b="2"/>', '<r b="2" a="1"/>'),  # attribute order does not matter
        ("<r><a>1</a><b/></r>", "<r>\n  <a>1</a>\n  <b></b>\n</r>\n"),  # nor indentation
        (f"{DECLARATION}<r/>", "<r/>"),  # nor the XML declaration
        ('<p:r xmlns:p="urn:x"><p:a>1</p:a></p:r>', '<r xmlns="urn:x"><a>1</a></r>'),  # prefixes
        ("<r><!-- a comment --><a>1</a><?pi x?></r>", "<r><a>1</a></r>"),
    ],
)
def test_equal_documents(live: str, shadow: str) -> None:
    assert found(live, shadow) == []


@pytest.mark.parametrize(
    ("live", "shadow", "expected"),
    [
        # an element only one side has: schema, shown as XML
        (
            "<r><a>1</a><b>2</b></r>",
            "<r><a>1</a></r>",
            [("$.b", "removed", "<b>2</b>", None, "schema")],
        ),
        ("<r/>", "<r><c x='1'/></r>", [("$.c", "added", None, '<c x="1" />', "schema")]),
        # an attribute only one side has: schema; another value: value
        ("<r/>", '<r version="2"/>', [("$.@version", "added", None, "2", "schema")]),
        ('<r><a x="1"/></r>', '<r><a x="2"/></r>', [("$.a.@x", "changed", "1", "2", "value")]),
        # another text: value, compared exactly but for whitespace-only text
        ("<r><a>1</a></r>", "<r><a>2</a></r>", [("$.a", "changed", "1", "2", "value")]),
        ("<r><a>1</a></r>", "<r><a> 1</a></r>", [("$.a", "changed", "1", " 1", "value")]),
        ("<r><a>1</a></r>", "<r><a/></r>", [("$.a", "changed", "1", "", "value")]),
        (
            "<p>Hi <b>x</b> all</p>",
            "<p>Hi <b>x</b> you</p>",
            [("$", "changed", "Hi  all", "Hi  you", "value")],
        ),
        # another root: one schema difference, nothing below compared
        (tour("a"), tour("b", root="tour"), [("$", "changed", "<root>", "<tour>", "schema")]),
        # a list is matched by position: its order matters, its length is data
        (
            tour("a", "b"),
            tour("b", "a"),
            [
                ("$.tags.list-item[0]", "changed", "a", "b", "value"),
                ("$.tags.list-item[1]", "changed", "b", "a", "value"),
            ],
        ),
        (
            tour("a", "b"),
            tour("a", "b", "c"),
            [("$.tags.list-item[2]", "added", None, "<list-item>c</list-item>", "value")],
        ),
        (
            tour("a", "b"),
            tour("a"),
            [("$.tags.list-item[1]", "removed", "<list-item>b</list-item>", None, "value")],
        ),
        (
            tour(),
            tour("a"),
            [("$.tags.list-item", "added", None, "<list-item>a</list-item>", "schema")],
        ),
        # named children in another order: one schema difference at their parent
        (
            "<r><id>1</id><href>h</href><x/></r>",
            "<r><href>h</href><id>1</id></r>",
            [
                ("$", "changed", ["id", "href"], ["href", "id"], "schema"),
                ("$.x", "removed", "<x />", None, "schema"),
            ],
        ),
        (
            "<r><a>1</a><b/><a>2</a></r>",
            "<r><a>1</a><a>2</a><b/></r>",
            [("$", "changed", ["a[0]", "b", "a[1]"], ["a[0]", "a[1]", "b"], "schema")],
        ),
        # names with their namespace, written by their local name; names outside the subset quoted
        (
            '<r xmlns:p="urn:p"><p:a>1</p:a></r>',
            '<r xmlns:p="urn:q"><p:a>1</p:a></r>',
            [
                ("$.a", "removed", '<ns0:a xmlns:ns0="urn:p">1</ns0:a>', None, "schema"),
                ("$.a", "added", None, '<ns0:a xmlns:ns0="urn:q">1</ns0:a>', "schema"),
            ],
        ),
        (
            "<r><a.b>1</a.b></r>",
            "<r><a.b>2</a.b></r>",
            [('$["a.b"]', "changed", "1", "2", "value")],
        ),
    ],
)
def test_differences_and_their_classes(live: str, shadow: str, expected: list[Row]) -> None:
    assert found(live, shadow) == expected


def test_a_long_element_is_shown_cut() -> None:
    (difference,) = compare_xml(b"<r/>", b"<r><big>" + b"x" * 5000 + b"</big></r>") or []
    assert difference.shadow == "<big>" + "x" * 194 + "…"
    assert len(difference.shadow) == 200


def test_differences_are_capped() -> None:
    items = "".join(f"<list-item>{n}</list-item>" for n in range(80))
    more = "".join(f"<list-item>{n + 1}</list-item>" for n in range(80))
    differences = compare_xml(f"<r>{items}</r>".encode(), f"<r>{more}</r>".encode()) or []
    assert len(differences) == MAX_DIFFERENCES + 1
    assert differences[-1].text() == f"...: live=<{80 - MAX_DIFFERENCES} more> shadow=<30 more>"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["$.@version"], ["noise", "value", "value", "value"]),
        (["$.results.list-item[*].href"], ["value", "noise", "noise", "value"]),
        (["$.results.list-item.href"], ["value", "noise", "noise", "value"]),  # every list-item
        (["$.results.list-item[1].href"], ["value", "value", "noise", "value"]),
        (["$.results.list-item[1]"], ["value", "value", "noise", "noise"]),
        (["$.results"], ["value", "noise", "noise", "noise"]),
        (["$.results[*].href", "$.version"], ["value", "value", "value", "value"]),  # JSON's form
    ],
)
def test_ignore_paths_name_elements_and_attributes(paths: list[str], expected: list[str]) -> None:
    item = "<list-item><href>{}</href><email>{}</email></list-item>"
    live = f'<r version="1"><results>{item.format("h0", "a")}{item.format("h1", "b")}</results></r>'
    shadow = (
        f'<r version="2"><results>{item.format("x0", "a")}{item.format("x1", "B")}</results></r>'
    )
    rows = found(live, shadow, Ignore.compile(paths))
    assert [row[0] for row in rows] == [
        "$.@version",
        "$.results.list-item[0].href",
        "$.results.list-item[1].href",
        "$.results.list-item[1].email",
    ]
    assert [row[4] for row in rows] == expected


def test_an_ignore_path_with_an_index_covers_a_list_of_one() -> None:
    live, shadow = tour("a", href="http://api/1"), tour("b", href="http://drf/1")
    ignore = Ignore.compile(["$.tags.list-item[*]", "$.href[0]"])
    assert [row[4] for row in found(live, shadow, ignore)] == ["noise", "noise"]
    assert [row[4] for row in found(live, shadow, Ignore.compile(["$.tags.list-item[1]"]))] == [
        "value",
        "value",
    ]


def test_generated_paths_compare_presence_only() -> None:
    generated = Ignore.compile(["$.id", "$.@token"])
    live, shadow = '<r token="a"><id>1</id></r>', '<r token="b"><id>9</id></r>'
    assert found(live, shadow, generated=generated) == []
    assert found(live, "<r><id>9</id></r>", generated=generated) == [
        ("$.@token", "removed", "a", None, "schema")
    ]


def test_learned_noise_generalises_xml_paths() -> None:
    assert generalise("$.tags.list-item[3]") == "$.tags.list-item[*]"
    assert generalise("$.results.list-item[0].@stamp") == "$.results.list-item[*].@stamp"
    book = NoiseBook()
    for n in range(3):
        again = tour("a", "b", href=f"http://api/tours/1?v={n}")
        book.observe("tours", compare(xml(tour("a", "b")), xml(again)))
    assert book.counts("tours") == {"$.href": 3}
    noise = book.learned("tours", after=3)
    differences = compare(xml(tour("a", "b")), xml(tour("a", href="x")), noise=noise)
    assert [(d.where, d.class_) for d in differences] == [
        ("$.href", "noise"),
        ("$.tags.list-item[1]", "value"),
    ]
    lists = NoiseBook()
    for n in range(3):
        lists.observe("tours", compare(xml(tour("a", "b")), xml(tour("a", f"{n}"))))
    assert lists.counts("tours") == {"$.tags.list-item[*]": 3}
    learned = lists.learned("tours", after=3)
    assert classify(compare(xml(tour("a", "b")), xml(tour("c", "d")), noise=learned)) == "noise"
    # learned noise never hides a schema difference
    assert classify(compare(xml(tour("a", "b")), xml(tour()), noise=learned)) == "schema"


UTF16_DTD = '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'


@pytest.mark.parametrize(
    "refused",
    [
        '<!DOCTYPE r [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><r>&b;</r>',
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        '<!DOCTYPE r SYSTEM "http://example.com/r.dtd"><r/>',
        "<r><a>1</a>",  # not well-formed
        "<r>&undeclared;</r>",
        "not xml at all",
        "<r xmlns:p='urn:p'><q:a/></r>",  # an unbound prefix
    ],
)
def test_refused_or_malformed_xml_is_compared_by_bytes(refused: str) -> None:
    live, shadow = xml(refused), xml("<r>y</r>")
    assert [(d.where, d.class_) for d in compare(live, shadow)] == [("body", "value")]
    assert compare_xml(refused.encode(), b"<r>y</r>") is None
    assert compare(live, xml(refused)) == []


def test_documents_nested_too_deep_are_compared_by_bytes() -> None:
    def deep(depth: int, leaf: str) -> bytes:
        return ("<a>" * depth + leaf + "</a>" * depth).encode()

    assert compare_xml(deep(MAX_DEPTH + 2, "1"), deep(MAX_DEPTH + 2, "2")) is None
    # the walk stops where one side has nothing more: a deep element only one side has is shown cut
    assert [d.where for d in compare(xml(deep(5000, "1").decode()), xml("<a/>"))] == ["$.a"]
    (difference,) = compare_xml(deep(MAX_DEPTH, "1"), deep(MAX_DEPTH, "2")) or []
    assert (difference.where, difference.live, difference.shadow) == (
        "$" + ".a" * (MAX_DEPTH - 1),
        "1",
        "2",
    )
    (shown,) = compare_xml(b"<r/>", b"<r>" + deep(5000, "1") + b"</r>") or []
    assert shown.shadow == "<a>" * 66 + "<…"


def test_a_dtd_in_another_encoding_is_refused_too() -> None:
    body = UTF16_DTD.encode("utf-16")
    assert b"<!DOCTYPE" not in body
    assert parse(body) is None
    assert parse('<?xml version="1.0" encoding="utf-16"?><r>é</r>'.encode("utf-16")) is not None


@pytest.mark.parametrize(
    ("live_type", "shadow_type", "expected"),
    [
        # both XML: compared as trees; another media type stays a header difference
        (b"text/xml; charset=utf-8", XML, [("content-type", "header"), ("$.a", "value")]),
        (b"application/xml; charset=UTF-8", XML, [("$.a", "value")]),
        (b"application/atom+xml", b"application/atom+xml", [("$.a", "value")]),
        # one side not XML: by bytes
        (b"application/json", XML, [("content-type", "header"), ("body", "value")]),
        (b"text/plain", b"text/plain", [("body", "value")]),
    ],
)
def test_only_two_xml_media_types_compare_as_trees(
    live_type: bytes, shadow_type: bytes, expected: list[tuple[str, str]]
) -> None:
    live, shadow = xml("<r><a>1</a></r>", live_type), xml("<r><a>2</a></r>", shadow_type)
    assert [(d.where, d.class_) for d in compare(live, shadow)] == expected


def test_a_body_over_the_cap_is_compared_by_hash() -> None:
    live = xml("<r><a>1</a></r>")
    shadow = Captured(200, XML, None, 9_999_999, "f" * 64)
    assert [d.where for d in compare(live, shadow)] == ["body"]


# Through the real listener, forwarder and shadow workers.

ITEM = "<list-item><id>{0}</id><href>http://api/things/{0}</href><email>{1}</email></list-item>"


def xml_backend(planted: str | None = None) -> Callable[[RawRequest], bytes]:
    """Answers `application/xml`; `planted`: the email of item 2 on GET /things/2."""

    def answer(request: RawRequest) -> bytes:
        email = "b@example.com"
        if planted is not None and request.request_line.startswith(b"GET /things/2 "):
            email = planted
        items = ITEM.format(1, "a@example.com") + ITEM.format(2, email)
        body = f'{DECLARATION}<root version="1"><results>{items}</results></root>'.encode()
        headers = (b"Content-Type: application/xml; charset=utf-8",)
        return respond(body=body, headers=headers)

    return answer


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    async with rigs() as start:
        yield start


async def test_an_xml_mismatch_names_the_element_through_the_rig(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(canned(xml_backend()))
    shadow = await upstream_factory(canned(xml_backend(planted="B@example.com")))
    rig = await rig_factory(routes(live.url, shadow.url))
    for path in ("/things/1", "/things/2"):
        response = await rig.get(path)
        assert response.status == 200
        assert response.body.startswith(DECLARATION.encode())
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch"), rig.count("error")) == (1, 1, 0)
    (mismatch,) = rig.shadows.recent("things", 10)
    assert (mismatch.target, mismatch.kind) == ("/things/2", "value")
    assert [(d.text(), d.class_) for d in mismatch.differences] == [
        ('$.results.list-item[1].email: live="b@example.com" shadow="B@example.com"', "value"),
    ]
