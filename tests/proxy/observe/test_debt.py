"""proxy.observe.debt: request shapes, the registry's counts, order and bound, and the merge of
several workers' entries."""

from __future__ import annotations

import pytest

from proxy.observe.debt import DebtRegistry, merge_debt, path_shape


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/bookings/resource", "/bookings/resource"),
        ("/bookings/12/34", "/bookings/{id}/{id}"),
        ("/bookings/7/customers/", "/bookings/{id}/customers/"),
        ("/x/0f8fad5b-d9cb-469f-a165-70867728950e", "/x/{id}"),
        ("/x/v2/12a", "/x/v2/12a"),
        ("/" + "a" * 300, "/" + "a" * 199 + "..."),
    ],
)
def test_path_shape(path: str, shape: str) -> None:
    assert path_shape(path) == shape


def test_debt_registry_counts_sorts_and_bounds() -> None:
    debt = DebtRegistry(limit=3)
    for n in range(5):
        debt.record(
            "bookings", "GET", f"/bookings/{n}/x", 404, "drf -> legacy", replayed=True, now=n
        )
    debt.record(
        "bookings", "POST", "/bookings/resource", 405, "drf -> legacy", replayed=True, now=5
    )
    debt.record(
        "bookings", "POST", "/bookings/resource", 404, "drf -> legacy", replayed=False, now=6
    )
    debt.record("tours", "GET", "/tours/1", 501, "drf -> legacy", replayed=True, now=7)
    debt.record("tours", "GET", "/tours/2", 501, "drf -> legacy", replayed=True, now=8)
    entries = [e.to_json() for e in debt.entries()]
    assert [(e["shape"], e["count"]) for e in entries] == [
        ("GET /bookings/{id}/x", 5),
        ("GET /tours/{id}", 2),  # same count: the most recent first
        ("POST /bookings/resource", 2),
    ]
    assert entries[2] == {
        "resource": "bookings",
        "method": "POST",
        "shape": "POST /bookings/resource",
        "path": "/bookings/resource",
        "count": 2,
        "not_replayed": 1,
        "codes": {"404": 1, "405": 1},
        "backends": {"drf -> legacy": 2},
        "last_seen": "1970-01-01T00:00:06.000Z",
    }
    debt.record("customers", "GET", "/customers", 404, "drf -> legacy", replayed=True, now=9)
    shapes = [e.path for e in debt.entries()]
    # full: the least counted, least recently seen shape made room
    assert shapes == ["/bookings/{id}/x", "/tours/{id}", "/customers"]
    assert [e.path for e in debt.entries("tours")] == ["/tours/{id}"]


def debt(path: str, count: int, last_seen: str, codes: dict[str, int], **extra: object) -> dict:
    return {
        "resource": "bookings", "method": "POST", "shape": f"POST {path}", "path": path,
        "count": count, "not_replayed": 0, "codes": codes,
        "backends": {"drf -> legacy": count}, "last_seen": last_seen, **extra,
    }  # fmt: skip


def test_merge_debt_sums_each_shape_over_workers() -> None:
    one = [
        debt("/bookings/resource", 3, "2026-11-28T10:00:00.100Z", {"404": 3}),
        debt("/bookings/{id}/x", 5, "2026-11-28T10:00:00.000Z", {"501": 5}),
    ]
    two = [
        debt("/bookings/resource", 4, "2026-11-28T10:00:01.000Z", {"405": 1, "404": 3},
             not_replayed=1),
        {**debt("/tours/{id}", 1, "2026-11-28T09:00:00.000Z", {"404": 1}), "resource": "tours"},
    ]  # fmt: skip
    merged = merge_debt(one + two)
    assert merged == [
        debt("/bookings/resource", 7, "2026-11-28T10:00:01.000Z", {"404": 6, "405": 1},
             not_replayed=1),
        debt("/bookings/{id}/x", 5, "2026-11-28T10:00:00.000Z", {"501": 5}),
        {**debt("/tours/{id}", 1, "2026-11-28T09:00:00.000Z", {"404": 1}), "resource": "tours"},
    ]  # fmt: skip
    assert [e["path"] for e in merge_debt(one + two, "tours")] == ["/tours/{id}"]
    assert merge_debt(one + two, limit=1) == merged[:1]
    assert one[0]["count"] == 3  # the inputs are left alone


def test_merge_debt_breaks_ties_by_recency_then_shape() -> None:
    entries = [
        debt("/b", 2, "2026-11-28T10:00:00.000Z", {"404": 2}),
        debt("/a", 2, "2026-11-28T10:00:00.000Z", {"404": 2}),
        debt("/c", 2, "2026-11-28T10:00:05.000Z", {"404": 2}),
    ]
    assert [e["path"] for e in merge_debt(entries)] == ["/c", "/a", "/b"]
