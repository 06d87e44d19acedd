"""The three source systems as real processes on free loopback ports, over HTTP.

`seeded` runs all three and is only read; writes go to `scratch`, a reservations process of
its own, so that the seeded counts stay exact whatever the test order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from source_systems import crm, operations, reservations
from stack.runner import Stack
from stack.services import SOURCE_SYSTEMS, StackConfig, source_system
from tests.support import ROOT, free_config


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    base = tmp_path_factory.mktemp("seeded")
    config = free_config(base / "not" / "yet" / "there")
    with Stack(cwd=ROOT, log_dir=base / "logs") as stack:
        for name in SOURCE_SYSTEMS:
            stack.start(source_system(config, name))
        yield config


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("scratch")
    config = free_config(base / "data")
    with Stack(cwd=ROOT, log_dir=base / "logs") as stack:
        stack.start(source_system(config, "reservations"))
        yield f"{config.url('reservations')}/bookings"


def call(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    response = requests.request(method, url, json=body, data=raw, timeout=5)
    assert response.headers["Content-Type"].startswith("application/json")
    return response.status_code, response.json()


def ids_of(url: str) -> tuple[int, list[int]]:
    status, body = call("GET", url)
    assert status == 200
    return body["count"], [item["id"] for item in body["items"]]


@pytest.mark.parametrize("name", SOURCE_SYSTEMS)
def test_health(seeded: StackConfig, name: str) -> None:
    assert call("GET", f"{seeded.url(name)}/healthz") == (200, {"status": "ok", "system": name})


def test_database_files_are_created_with_their_directories(seeded: StackConfig) -> None:
    assert sorted(path.name for path in Path(seeded.data_dir).glob("*.sqlite3")) == [
        "crm.sqlite3",
        "operations.sqlite3",
        "reservations.sqlite3",
    ]


@pytest.mark.parametrize(
    ("name", "collection", "count"),
    [
        ("reservations", "customers", 100),
        ("reservations", "departures", 177),
        ("reservations", "bookings", 200),
        ("crm", "bookings", 180),
        ("crm", "customers", 100),
        ("operations", "tours", 50),
        ("operations", "itineraries", 50),
        ("operations", "itinerary_variations", 125),
        ("operations", "itinerary_maps", 185),
        ("operations", "accommodations", 45),
    ],
)
def test_seeded_counts(seeded: StackConfig, name: str, collection: str, count: int) -> None:
    status, body = call("GET", f"{seeded.url(name)}/{collection}?limit=0")
    assert (status, body) == (200, {"count": count, "items": []})


def test_get_by_id_returns_the_seeded_record(seeded: StackConfig) -> None:
    url = seeded.url("reservations")
    assert call("GET", f"{url}/bookings/7") == (200, reservations.seed()["bookings"][6])
    url = seeded.url("operations")
    assert call("GET", f"{url}/itineraries/3") == (200, operations.seed()["itineraries"][2])
    assert call("GET", f"{seeded.url('crm')}/customers/100") == (200, crm.seed()["customers"][99])


@pytest.mark.parametrize(
    "path",
    [
        "/bookings/201",
        "/bookings/0",
        "/bookings/-1",
        "/bookings/abc",
        "/bookings/1.0",
        "/nope",
        "/nope/1",
        "/tours",
    ],
)
def test_not_found(seeded: StackConfig, path: str) -> None:
    assert call("GET", f"{seeded.url('reservations')}{path}") == (404, {"error": "not found"})


def test_crm_has_no_record_of_every_tenth_booking(seeded: StackConfig) -> None:
    url = f"{seeded.url('crm')}/bookings"
    assert call("GET", f"{url}/10") == (404, {"error": "not found"})
    assert ids_of(f"{url}?ids=9,10,11,20") == (2, [9, 11])


def test_default_page_is_the_first_twenty(seeded: StackConfig) -> None:
    assert ids_of(f"{seeded.url('reservations')}/bookings") == (200, list(range(1, 21)))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("offset=20&limit=5", [21, 22, 23, 24, 25]),
        ("offset=198&limit=5", [199, 200]),
        ("offset=200", []),
        ("offset=0&limit=1000", list(range(1, 201))),
    ],
)
def test_pagination(seeded: StackConfig, query: str, expected: list[int]) -> None:
    assert ids_of(f"{seeded.url('reservations')}/bookings?{query}") == (200, expected)


def test_filter_on_an_integer_field(seeded: StackConfig) -> None:
    expected = [d["id"] for d in reservations.seed()["departures"] if d["tour_id"] == 3]
    assert len(expected) >= 2
    url = f"{seeded.url('reservations')}/departures?tour_id=3"
    assert ids_of(url) == (len(expected), expected)


def test_filter_on_a_string_field_combined(seeded: StackConfig) -> None:
    expected = [
        b["id"]
        for b in reservations.seed()["bookings"]
        if b["status"] == "cancelled" and b["currency"] == "CAD"
    ]
    assert expected
    url = f"{seeded.url('reservations')}/bookings?status=cancelled&currency=CAD&limit=1000"
    assert ids_of(url) == (len(expected), expected)


def test_filter_counts_all_matches_but_returns_the_window(seeded: StackConfig) -> None:
    maps = [m["id"] for m in operations.seed()["itinerary_maps"] if m["itinerary_id"] == 5]
    url = f"{seeded.url('operations')}/itinerary_maps?itinerary_id=5&limit=1&offset=1"
    assert ids_of(url) == (len(maps), maps[1:2])


def test_filter_on_two_integer_fields(seeded: StackConfig) -> None:
    itinerary = operations.seed()["itineraries"][4]
    variation = itinerary["variation_ids"][1]
    url = f"{seeded.url('operations')}/itinerary_maps?itinerary_id=5&variation_id={variation}"
    status, body = call("GET", url)
    assert status == 200 and body["count"] >= 1
    assert {(m["itinerary_id"], m["variation_id"]) for m in body["items"]} == {(5, variation)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ids=5,3,999", (2, [3, 5])),
        ("ids=", (0, [])),
        ("ids=1,2,3&status=nonexistent", (0, [])),
        ("unknown_field=1", (0, [])),
    ],
)
def test_ids_and_filters(seeded: StackConfig, query: str, expected: tuple[int, list[int]]) -> None:
    assert ids_of(f"{seeded.url('reservations')}/bookings?{query}") == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=abc", "limit must be an integer between 0 and 1000"),
        ("limit=1001", "limit must be an integer between 0 and 1000"),
        ("limit=-1", "limit must be an integer between 0 and 1000"),
        ("offset=x", "offset must be an integer >= 0"),
        ("ids=1,a", "ids must be a comma separated list of integers"),
    ],
)
def test_bad_list_queries(seeded: StackConfig, query: str, message: str) -> None:
    url = f"{seeded.url('reservations')}/bookings?{query}"
    assert call("GET", url) == (400, {"error": message})


def test_method_not_allowed_is_json(seeded: StackConfig) -> None:
    url = f"{seeded.url('reservations')}/bookings/1"
    assert call("DELETE", url) == (405, {"error": "method not allowed"})


def test_post_assigns_the_next_id(scratch: str) -> None:
    status, created = call("POST", scratch, {"status": "pending", "travellers": 2})
    assert status == 201
    assert created["id"] > 200
    assert created == {"id": created["id"], "status": "pending", "travellers": 2}
    assert call("GET", f"{scratch}/{created['id']}") == (200, created)


def test_post_with_a_given_id_then_409_when_taken(scratch: str) -> None:
    assert call("POST", scratch, {"id": 5000, "note": "given"}) == (
        201,
        {"id": 5000, "note": "given"},
    )
    assert call("POST", scratch, {"id": 5000, "note": "again"}) == (
        409,
        {"error": "id 5000 already exists"},
    )
    assert call("POST", scratch, {"id": 3}) == (409, {"error": "id 3 already exists"})
    assert call("GET", f"{scratch}/5000") == (200, {"id": 5000, "note": "given"})


@pytest.mark.parametrize("given", ["7", 0, -2, True, 1.5])
def test_post_with_a_bad_id(scratch: str, given: object) -> None:
    assert call("POST", scratch, {"id": given}) == (400, {"error": "id must be a positive integer"})


def test_put_replaces_every_field_and_keeps_the_id(scratch: str) -> None:
    _, created = call("POST", scratch, {"status": "pending", "travellers": 2})
    url = f"{scratch}/{created['id']}"
    replaced = {"id": created["id"], "status": "confirmed"}
    assert call("PUT", url, {"id": 999999, "status": "confirmed"}) == (200, replaced)
    assert call("GET", url) == (200, replaced)


def test_patch_merges_shallowly(scratch: str) -> None:
    _, created = call("POST", scratch, {"status": "pending", "extra": {"a": 1, "b": 2}})
    url = f"{scratch}/{created['id']}"
    merged = {"id": created["id"], "status": "cancelled", "extra": {"a": 3}}
    assert call("PATCH", url, {"status": "cancelled", "extra": {"a": 3}}) == (200, merged)
    assert call("GET", url) == (200, merged)


def test_patch_of_a_seeded_record_keeps_its_other_fields(scratch: str) -> None:
    original = reservations.seed()["bookings"][41]
    status, body = call("PATCH", f"{scratch}/42", {"status": "cancelled"})
    assert (status, body) == (200, {**original, "status": "cancelled"})


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_of_a_missing_record(scratch: str, method: str) -> None:
    assert call(method, f"{scratch}/777777", {"a": 1}) == (404, {"error": "not found"})
    assert call(method, f"{scratch}/abc", {"a": 1}) == (404, {"error": "not found"})


@pytest.mark.parametrize(("method", "path"), [("POST", ""), ("PUT", "/1"), ("PATCH", "/1")])
@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"null", b"{not json", b""])
def test_body_must_be_a_json_object(scratch: str, method: str, path: str, raw: bytes) -> None:
    expected = (400, {"error": "body must be a JSON object"})
    assert call(method, f"{scratch}{path}", raw=raw) == expected


def test_write_to_an_unknown_collection(scratch: str) -> None:
    url = scratch.replace("/bookings", "/tours")
    assert call("POST", url, {"a": 1}) == (404, {"error": "not found"})
    assert call("PATCH", f"{url}/1", {"a": 1}) == (404, {"error": "not found"})
