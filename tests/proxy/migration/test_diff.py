"""proxy.migration.diff: what makes a shadow answer differ from the live one (tables, no
sockets)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from proxy.migration.diff import (
    CLASSES,
    GENERATED,
    MAX_DIFFERENCES,
    Captured,
    Difference,
    allowed_methods,
    classify,
    compare,
    diff_json,
    media_type,
    worst,
)
from proxy.routing.jsonpath import Ignore

JSON = b"application/json"


def doc(value: Any, status: int = 200, content_type: bytes = JSON) -> Captured:
    return Captured.of(status, content_type, json.dumps(value).encode())


@pytest.mark.parametrize(
    ("live", "shadow", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, []),  # member order does not matter
        ({"a": 1}, {"a": 1.0}, []),
        ({"a": 1}, {"a": 2}, [("$.a", "changed", 1, 2)]),
        ({"a": 1}, {"a": True}, [("$.a", "changed", 1, True)]),
        ({"a": 0}, {"a": False}, [("$.a", "changed", 0, False)]),
        ({"a": None}, {"a": 0}, [("$.a", "changed", None, 0)]),
        ({"a": "1"}, {"a": 1}, [("$.a", "changed", "1", 1)]),
        ({"a": []}, {"a": {}}, [("$.a", "changed", [], {})]),
        ({"a": 1}, {}, [("$.a", "removed", 1, None)]),
        ({}, {"a": [1]}, [("$.a", "added", None, [1])]),
        ([1, 2, 3], [1, 2], [("$[2]", "removed", 3, None)]),
        ([1], [1, {"x": 1}], [("$[1]", "added", None, {"x": 1})]),
        (
            {"results": [{"id": 1, "contact_email": "a@x"}, {"id": 2, "contact_email": "b@x"}]},
            {"results": [{"id": 1, "contact_email": "a@x"}, {"id": 2, "contact_email": "B@x"}]},
            [("$.results[1].contact_email", "changed", "b@x", "B@x")],
        ),
        (
            {"x": {"y": [0, {"z": "s"}]}, "k": 1},
            {"x": {"y": [0, {"z": "t", "w": 2}]}},
            [
                ("$.x.y[1].z", "changed", "s", "t"),
                ("$.x.y[1].w", "added", None, 2),
                ("$.k", "removed", 1, None),
            ],
        ),
        ("a", "b", [("$", "changed", "a", "b")]),
    ],
)
def test_diff_json(live: Any, shadow: Any, expected: list[tuple[str, str, Any, Any]]) -> None:
    found = diff_json(live, shadow)
    assert [(d.where, d.kind, d.live, d.shadow) for d in found] == expected


IGNORED = Ignore.compile(["$.meta.generated_at", "$.results[*].href", "$.extra"])


# Differences under ignore paths used to be skipped; they are now reported, as `noise` (an ignored
# difference is not a match). `expected`: the other differences, as before; `noise`: those.
@pytest.mark.parametrize(
    ("live", "shadow", "expected", "noise"),
    [
        ({"meta": {"generated_at": 1}}, {"meta": {"generated_at": 2}}, [], ["$.meta.generated_at"]),
        (
            {"meta": {"generated_at": 1, "n": 1}},
            {"meta": {"n": 2}},
            ["$.meta.n"],
            ["$.meta.generated_at"],
        ),
        ({"extra": {"deep": [1]}}, {}, [], ["$.extra"]),  # removed, but ignored
        ({}, {"extra": 1}, [], ["$.extra"]),  # added, but ignored
        (
            {"extra": {"deep": [1]}},
            {"extra": {"deep": [2], "x": 1}},
            [],
            ["$.extra.deep[0]", "$.extra.x"],
        ),
        (
            {"results": [{"href": "a", "id": 1}, {"href": "b", "id": 2}]},
            {"results": [{"href": "A", "id": 1}, {"href": "B", "id": 3}]},
            ["$.results[1].id"],
            ["$.results[0].href", "$.results[1].href"],
        ),
        ({"results": {"href": 1}}, {"results": {"href": 2}}, ["$.results.href"], []),  # not a list
    ],
)
def test_ignore_paths(live: Any, shadow: Any, expected: list[str], noise: list[str]) -> None:
    found = diff_json(live, shadow, IGNORED)
    assert [d.where for d in found if d.class_ != "noise"] == expected
    assert [d.where for d in found if d.class_ == "noise"] == noise


def test_compare_status_content_type_and_body() -> None:
    live = doc({"a": 1})
    assert compare(live, doc({"a": 1})) == []
    assert compare(live, doc({"a": 1}, content_type=b"Application/JSON; charset=utf-8")) == []
    assert [d.text() for d in compare(live, doc({"a": 2}, 404, b"text/html"))] == [
        "status: live=200 shadow=404",
        'content-type: live="application/json" shadow="text/html"',
        "$.a: live=1 shadow=2",
    ]


def test_non_json_bodies_compare_by_hash() -> None:
    live = Captured.of(200, b"text/plain", b"hello")
    assert compare(live, Captured.of(200, b"text/plain", b"hello")) == []
    (difference,) = compare(live, Captured.of(200, b"text/plain", b"hullo"))
    hello, hullo = (hashlib.sha256(text).hexdigest()[:16] for text in (b"hello", b"hullo"))
    assert difference == Difference(
        "body", "changed", f"<5 bytes, sha256 {hello}>", f"<5 bytes, sha256 {hullo}>"
    )
    assert difference.text() == (
        f"body: live=<5 bytes, sha256 {hello}> shadow=<5 bytes, sha256 {hullo}>"
    )


def test_json_on_one_side_only_compares_by_hash() -> None:
    (difference,) = compare(doc({"a": 1}), Captured.of(200, JSON, b"{oops"))
    assert difference.where == "body"


def over_cap(body: bytes) -> Captured:
    """As the shadow capture keeps it when `body` is over the cap: size and hash only."""
    return Captured(200, JSON, None, len(body), hashlib.sha256(body).hexdigest())


def test_bodies_over_the_cap_compare_by_hash() -> None:
    big = json.dumps({"items": list(range(1000))}).encode()
    other = big.replace(b"999", b"998")
    assert compare(over_cap(big), over_cap(big)) == []
    assert compare(over_cap(big), Captured.of(200, JSON, big)) == []  # one side whole
    (difference,) = compare(over_cap(big), over_cap(other))
    digest = hashlib.sha256(other).hexdigest()[:16]
    assert (difference.where, difference.shadow) == (
        "body",
        f"<{len(other)} bytes, sha256 {digest}>",
    )
    # ignore paths cannot apply to a body known only by its hash
    ignore_all = Ignore.compile(["$.items"])
    assert [d.where for d in compare(over_cap(big), over_cap(other), ignore_all)] == ["body"]


def test_the_number_of_differences_is_bounded() -> None:
    found = diff_json(list(range(500)), [n + 1 for n in range(500)])
    assert len(found) == MAX_DIFFERENCES + 1
    assert found[-1].where == "..."


def test_long_values_are_shortened() -> None:
    (difference,) = diff_json({"a": "x" * 1000}, {"a": "y"})
    assert difference.live.startswith('<"xxx') and len(difference.live) < 210
    (difference,) = diff_json({}, {"a": list(range(1000))})
    assert difference.shadow.startswith("<[0, 1, 2") and difference.shadow.endswith("…>")


def test_difference_json_round_trip() -> None:
    difference = Difference("$.a", "added", None, {"b": 1}, "schema")
    assert difference.to_json() == {
        "field": "$.a",
        "kind": "added",
        "live": None,
        "shadow": {"b": 1},
        "class": "schema",
    }
    assert Difference.from_json(difference.to_json()) == difference
    assert difference.text() == '$.a: added, shadow={"b": 1}'
    assert Difference("$.a", "removed", [1], None).text() == "$.a: removed, live=[1]"


def test_difference_without_a_class_reads_as_value() -> None:
    old = {"field": "$.a", "kind": "changed", "live": 1, "shadow": 2}  # kept before classes
    assert Difference.from_json(old) == Difference("$.a", "changed", 1, 2, "value")
    assert Difference("$.a", "changed", 1, 2).class_ == "value"


def test_media_type() -> None:
    assert media_type(b" Application/JSON ; charset=utf-8") == "application/json"
    assert media_type(b"") == ""


def test_media_type_and_allowed_methods() -> None:
    assert allowed_methods(b"get,  Head ,GET") == "GET, HEAD"
    assert allowed_methods(b"") == allowed_methods(b" , ") == ""


# -- classes ------------------------------------------------------------------------------------

BASE = {"id": 7, "name": "Alps", "tags": ["a", "b"], "meta": {"n": 1}}


def changed(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


def without(name: str) -> dict[str, Any]:
    return {key: value for key, value in BASE.items() if key != name}


def whole(body: bytes, status: int = 200, content_type: bytes = JSON, **headers: bytes) -> Captured:
    return Captured.of(status, content_type, body, **headers)


@pytest.mark.parametrize(
    ("live", "shadow", "expected"),
    [
        (doc(BASE), doc(BASE), []),
        (doc(BASE, 201), doc(BASE, 404), [("status", "status")]),
        (doc(BASE, 200), doc(BASE, 503), [("status", "status")]),
        (doc(BASE, 200), doc(BASE, 201), [("status", "value")]),  # same class, other code
        (doc(BASE, 404), doc(BASE, 410), [("status", "value")]),
        (doc(BASE), doc({**BASE, "extra": 1}), [("$.extra", "schema")]),  # field added
        (doc(BASE), doc(without("name")), [("$.name", "schema")]),  # field removed
        (doc(BASE), doc(changed(id="7")), [("$.id", "schema")]),  # number vs string
        (doc(BASE), doc(changed(meta=[1])), [("$.meta", "schema")]),  # object vs list
        (doc(BASE), doc(changed(name=None)), [("$.name", "schema")]),  # null vs something
        (doc(changed(id=None)), doc(BASE), [("$.id", "schema")]),
        (doc(changed(id=1)), doc(changed(id=True)), [("$.id", "schema")]),  # boolean apart
        (doc(BASE), doc(changed(id=7.0)), []),  # int vs float: one type, one value
        (doc(BASE), doc(changed(id=8.5)), [("$.id", "value")]),
        (doc(BASE), doc(changed(name="Andes")), [("$.name", "value")]),  # other value
        (doc(BASE), doc(changed(meta={"n": 2})), [("$.meta.n", "value")]),
        (doc(BASE), doc(changed(tags=["a"])), [("$.tags[1]", "value")]),  # a list's length
        (
            doc(BASE),
            doc(changed(tags=["b", "a"])),
            [("$.tags[0]", "value"), ("$.tags[1]", "value")],
        ),
        (whole(b"<p>a</p>"), whole(b"<p>b</p>"), [("body", "value")]),  # not JSON
        (doc(BASE), doc(BASE, content_type=b"text/json"), [("content-type", "header")]),
        (doc(BASE), doc(BASE, content_type=b"application/json; charset=latin-1"), []),
        (
            whole(b"{}", location=b"/bookings/7"),
            whole(b"{}", location=b"/bookings/8"),
            [("location", "header")],
        ),
        (whole(b"{}"), whole(b"{}", location=b"/bookings/8"), [("location", "header")]),
        (whole(b"{}", allow=b"GET, HEAD"), whole(b"{}", allow=b"GET"), [("allow", "header")]),
        (whole(b"{}", allow=b"GET, HEAD"), whole(b"{}", allow=b"head,get "), []),  # a set
    ],
)
def test_each_class(live: Captured, shadow: Captured, expected: list[tuple[str, str]]) -> None:
    found = compare(live, shadow)
    assert [(d.where, d.class_) for d in found] == expected
    assert classify(found) == (expected[0][1] if expected else None)


def test_header_differences_say_which_side_has_one() -> None:
    (added,) = compare(whole(b"{}"), whole(b"{}", location=b"/b/8"))
    (removed,) = compare(whole(b"{}", allow=b"get"), whole(b"{}"))
    (other,) = compare(whole(b"{}", allow=b"get"), whole(b"{}", allow=b"GET,post"))
    assert added.text() == 'location: added, shadow="/b/8"'
    assert removed.text() == 'allow: removed, live="GET"'
    assert other.text() == 'allow: live="GET" shadow="GET, POST"'


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ([], None),
        (["noise"], "noise"),
        (["noise", "header", "value"], "value"),
        (["value", "schema", "noise"], "schema"),
        (["header", "status", "schema"], "status"),
        (list(reversed(CLASSES)), "status"),
    ],
)
def test_worst(classes: list[str], expected: str | None) -> None:
    assert CLASSES == ("status", "schema", "value", "header", "noise")
    assert worst(classes) == expected
    assert worst(iter(classes)) == expected


def test_the_comparison_class_is_its_worst_difference() -> None:
    found = compare(doc(changed(name="x", added=1), 404, b"text/html"), doc(BASE, 200), IGNORED)
    assert [d.class_ for d in found] == ["status", "header", "value", "schema"]
    assert classify(found) == "status"
    assert classify(found[1:]) == "schema"
    assert classify(found[1:3]) == "value"
    assert classify(found[1:2]) == "header"
    assert classify(compare(doc({"extra": 1}), doc({"extra": 2}), IGNORED)) == "noise"
    assert classify([]) is None


# -- declared and learned noise ----------------------------------------------------------------

LEARNED = Ignore.compile(["$.meta", "$.tags[*]", "$.id"])


@pytest.mark.parametrize(
    ("live", "shadow", "expected"),
    [
        (BASE, changed(meta={"n": 2}), [("$.meta.n", "noise")]),  # value -> noise
        (BASE, changed(tags=["b", "a"]), [("$.tags[0]", "noise"), ("$.tags[1]", "noise")]),
        (BASE, changed(tags=["a"]), [("$.tags[1]", "noise")]),  # an item is data
        (BASE, changed(id=8), [("$.id", "noise")]),
        (BASE, changed(name="x"), [("$.name", "value")]),  # not a learned path
        (BASE, changed(id="7"), [("$.id", "schema")]),  # never hides a type change
        (BASE, without("id"), [("$.id", "schema")]),  # nor a missing field
        (BASE, changed(meta={"n": 1, "x": 1}), [("$.meta.x", "schema")]),  # nor an added one
    ],
)
def test_learned_noise_turns_only_values_into_noise(
    live: Any, shadow: Any, expected: list[tuple[str, str]]
) -> None:
    found = compare(doc(live), doc(shadow), noise=LEARNED)
    assert [(d.where, d.class_) for d in found] == expected


def test_learned_noise_never_hides_a_status() -> None:
    everything = Ignore.compile(["$"])
    found = compare(doc(BASE, 200), doc(changed(id=8), 404), noise=everything)
    assert [(d.where, d.class_) for d in found] == [("status", "status"), ("$.id", "noise")]
    assert classify(found) == "status"
    found = compare(doc(BASE, 200), doc(BASE, 201), noise=everything)
    assert [(d.where, d.class_) for d in found] == [("status", "value")]


def test_declared_ignore_turns_any_body_difference_into_noise() -> None:
    everything = Ignore.compile(["$"])
    shadow = {"id": "7", "tags": ["a"], "meta": {"n": 2}, "extra": 1}  # every kind at once
    found = compare(doc(BASE, 200), doc(shadow, 404, b"text/html"), everything)
    assert [(d.where, d.class_) for d in found] == [
        ("status", "status"),  # status is never noise
        ("content-type", "header"),  # nor a header
        ("$.id", "noise"),
        ("$.name", "noise"),
        ("$.tags[1]", "noise"),
        ("$.meta.n", "noise"),
        ("$.extra", "noise"),
    ]


def test_a_body_known_by_its_hash_is_never_noise() -> None:
    everything = Ignore.compile(["$"])
    found = compare(whole(b"a"), whole(b"b"), everything, everything)
    assert [(d.where, d.class_) for d in found] == [("body", "value")]


# -- generated values (dry-run writes) ---------------------------------------------------------

CREATED = {
    "id": 201,
    "customer": {"id": 3, "href": "http://h/customers/3"},
    "status": "pending",
    "date_created": "2026-11-28",
    "href": "http://h/bookings/201",
}


@pytest.mark.parametrize(
    ("shadow", "expected"),
    [
        ({**CREATED, "id": 202, "href": "http://h/bookings/202"}, []),  # same type, other value
        ({**CREATED, "date_created": "2026-11-29"}, []),
        ({**CREATED, "id": "202"}, [("$.id", "schema")]),  # other type
        ({**CREATED, "id": None}, [("$.id", "schema")]),
        ({key: value for key, value in CREATED.items() if key != "href"}, [("$.href", "schema")]),
        ({**CREATED, "status": "confirmed"}, [("$.status", "value")]),  # not generated
        (
            {**CREATED, "customer": {"id": 4, "href": "x"}},
            [("$.customer.id", "value"), ("$.customer.href", "value")],
        ),
    ],
)
def test_generated_paths_compare_by_presence_and_type(
    shadow: Any, expected: list[tuple[str, str]]
) -> None:
    found = compare(doc(CREATED, 201), doc(shadow, 201), generated=GENERATED)
    assert [(d.where, d.class_) for d in found] == expected


def test_a_generated_object_is_compared_by_type_only() -> None:
    generated = Ignore.compile(["$.links"])
    live, shadow = {"links": {"a": 1}}, {"links": {"b": [2]}}
    assert diff_json(live, shadow, generated=generated) == []
    assert [d.where for d in diff_json(live, {"links": [1]}, generated=generated)] == ["$.links"]


def test_generated_location_compares_by_presence() -> None:
    live = whole(b"{}", 201, location=b"/bookings/201")
    other = whole(b"{}", 201, location=b"/bookings/202")
    absent = whole(b"{}", 201)
    assert compare(live, other, generated=GENERATED) == []
    assert [d.where for d in compare(live, absent, generated=GENERATED)] == ["location"]
    assert [d.where for d in compare(live, other)] == ["location"]  # exactly otherwise


# -- the cap, and paths ------------------------------------------------------------------------


def test_a_status_difference_is_never_lost_to_the_cap() -> None:
    found = compare(doc(list(range(500)), 200), doc([n + 1 for n in range(500)], 500))
    assert (found[0].where, found[0].class_) == ("status", "status")
    assert len(found) == 1 + MAX_DIFFERENCES + 1
    assert (found[-1].where, found[-1].live, found[-1].class_) == ("...", "<450 more>", "value")


def test_the_cap_keeps_the_most_severe_in_document_order() -> None:
    live = {"values": list(range(100)), "gone": 1, "noise": list(range(100))}
    shadow = {"values": [n + 1 for n in range(100)], "noise": [n + 1 for n in range(100)]}
    found = diff_json(live, shadow, Ignore.compile(["$.noise"]))
    assert len(found) == MAX_DIFFERENCES + 1
    assert [d.where for d in found[:2]] == ["$.values[0]", "$.values[1]"]
    assert (found[-2].where, found[-2].class_) == ("$.gone", "schema")  # after the values
    assert [d.class_ for d in found[:-2]] == ["value"] * (MAX_DIFFERENCES - 1)
    assert (found[-1].live, found[-1].class_) == ("<151 more>", "value")
    assert classify(found) == "schema"


def test_the_cap_marker_has_the_worst_class_left_out() -> None:
    found = diff_json({"noise": list(range(60))}, {"noise": []}, Ignore.compile(["$.noise"]))
    assert (found[-1].live, found[-1].class_) == ("<10 more>", "noise")


def test_names_outside_the_ignore_grammar_are_quoted() -> None:
    live = {"first name": 1, "1st": 1, "a.b": 1, "ok-name_2": 1}
    shadow = {"first name": 2, "1st": 2, "a.b": 2, "ok-name_2": 2}
    assert [d.where for d in diff_json(live, shadow)] == [
        '$["first name"]',
        '$["1st"]',
        '$["a.b"]',
        "$.ok-name_2",
    ]
