"""proxy.migration.diff: what makes a shadow answer differ from the live one (tables, no
sockets)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from proxy.migration.diff import (
    MAX_DIFFERENCES,
    Captured,
    Difference,
    compare,
    diff_json,
    media_type,
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


@pytest.mark.parametrize(
    ("live", "shadow", "expected"),
    [
        ({"meta": {"generated_at": 1}}, {"meta": {"generated_at": 2}}, []),
        ({"meta": {"generated_at": 1, "n": 1}}, {"meta": {"n": 2}}, ["$.meta.n"]),
        ({"extra": {"deep": [1]}}, {}, []),  # removed, but ignored
        ({}, {"extra": 1}, []),  # added, but ignored
        (
            {"results": [{"href": "a", "id": 1}, {"href": "b", "id": 2}]},
            {"results": [{"href": "A", "id": 1}, {"href": "B", "id": 3}]},
            ["$.results[1].id"],
        ),
        ({"results": {"href": 1}}, {"results": {"href": 2}}, ["$.results.href"]),  # not a list
    ],
)
def test_ignore_paths(live: Any, shadow: Any, expected: list[str]) -> None:
    assert [d.where for d in diff_json(live, shadow, IGNORED)] == expected


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
    difference = Difference("$.a", "added", None, {"b": 1})
    assert difference.to_json() == {
        "field": "$.a",
        "kind": "added",
        "live": None,
        "shadow": {"b": 1},
    }
    assert Difference.from_json(difference.to_json()) == difference
    assert difference.text() == '$.a: added, shadow={"b": 1}'
    assert Difference("$.a", "removed", [1], None).text() == "$.a: removed, live=[1]"


def test_media_type() -> None:
    assert media_type(b" Application/JSON ; charset=utf-8") == "application/json"
    assert media_type(b"") == ""
