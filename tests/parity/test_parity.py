"""Contract parity: the same request to legacy and DRF gets the same status and JSON.

Both gateways see the same Host header, so their links are the same too. Every answer is
also checked against openapi.yaml. Writes are compared by the state they leave in the
source systems. The deliberate differences (drf_app/MIGRATION_NOTES.md) are asserted as
differences.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import requests

from tests.contract import assert_conforms, load_spec
from tests.support import HEADERS, World

HOST = {"Host": "api.example.test"}
RESOURCES = [
    "bookings",
    "customers",
    "departures",
    "tours",
    "itineraries",
    "itinerary_maps",
    "accommodations",
]


@cache
def first_variation(operations_url: str, itinerary: int) -> int:
    record = requests.get(f"{operations_url}/itineraries/{itinerary}", timeout=5).json()
    return int(record["variation_ids"][0])


def send(
    base: str, method: str, path: str, *, contract: bool = True, **kwargs: Any
) -> tuple[int, Any]:
    headers = {**HEADERS, **HOST, **kwargs.pop("headers", {})}
    response = requests.request(method, base + path, headers=headers, timeout=10, **kwargs)
    body = response.json() if response.content else None
    if contract:
        assert_conforms(load_spec(), method, path, response.status_code, body)
    return response.status_code, body


def both(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, **kwargs: Any
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    path = path.format(vid=first_variation(world.url("operations"), 1))
    return send(legacy_url, method, path, **kwargs), send(drf_url, method, path, **kwargs)


READS = [
    *(f"/{resource}" for resource in RESOURCES),
    *(f"/{resource}/?page=2&max_per_page=7" for resource in RESOURCES),
    *(f"/{resource}/2" for resource in RESOURCES),
    *(f"/{resource}/999999" for resource in RESOURCES),
    "/bookings?page=999",
    "/bookings?max_per_page=500",
    "/bookings?page=10&max_per_page=20",
    "/bookings?page=-1&max_per_page=abc",
    "/bookings?max_per_page=0",
    "/bookings?page=2&page=3&max_per_page=5&max_per_page=x",
    "/bookings?page=+2&max_per_page=%205",
    "/bookings/10",
    "/bookings/2/",
    "/bookings/02",
    "/bookings/0",
    "/bookings/abc",
    "/bookings/1/2",
    "/bookings/resource",
    "/customers/100",
    "/tours/1/departures",
    "/tours/1/departures/?page=2&max_per_page=1",
    "/tours/999/departures",
    "/tours/1/itinerary_maps",
    "/itineraries/1/itinerary_maps",
    "/itineraries/1/itinerary_maps?max_per_page=1&page=2",
    "/itineraries/999/itinerary_maps",
    "/itineraries/1/{vid}",
    "/itineraries/1/{vid}/",
    "/itineraries/2/{vid}",
    "/itineraries/1/999999",
    "/itineraries/1/{vid}/itinerary_maps",
    "/itineraries/2/{vid}/itinerary_maps",
    "/itineraries/1/{vid}/departures",
    "/itineraries/1/{vid}/itinerary_maps/1",
    "/nowhere",
    "/",
]


@pytest.mark.parametrize("path", READS)
def test_reads(world: World, legacy_url: str, drf_url: str, path: str) -> None:
    legacy, drf = both(world, legacy_url, drf_url, "GET", path)
    assert drf == legacy


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "https"},
        {"X-Forwarded-Host": "public.example.com"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com:8443"},
    ],
)
def test_forwarded_links(world: World, legacy_url: str, drf_url: str, headers: Any) -> None:
    legacy, drf = both(world, legacy_url, drf_url, "GET", "/bookings?page=2", headers=headers)
    assert drf == legacy


@pytest.mark.parametrize("path", ["/bookings/1", "/tours", "/nowhere", "/bookings/resource"])
@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_bad_keys(world: World, legacy_url: str, drf_url: str, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-Application-Key": key}
    envelope = {"http_status_code": 401, "message": "Missing or invalid X-Application-Key."}
    for method in ("GET", "POST"):
        answers = [
            requests.request(method, url + path, headers={**HOST, **headers}, timeout=5)
            for url in (legacy_url, drf_url)
        ]
        assert [(a.status_code, a.json()) for a in answers] == [
            (401, {**envelope, "errors": []})
        ] * 2


NOT_ALLOWED = [
    ("DELETE", "/bookings/1"),
    ("DELETE", "/bookings"),
    ("PUT", "/bookings"),
    ("PATCH", "/customers/"),
    ("POST", "/bookings/1"),
    ("POST", "/tours"),
    ("PUT", "/tours/1"),
    ("PATCH", "/departures/1"),
    ("POST", "/itineraries/1/itinerary_maps"),
    ("PUT", "/itineraries/1/{vid}"),
    ("DELETE", "/itineraries/1/{vid}/itinerary_maps"),
]


@pytest.mark.parametrize(("method", "path"), NOT_ALLOWED)
def test_methods_not_allowed(
    world: World, legacy_url: str, drf_url: str, method: str, path: str
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, method, path, json={})
    assert legacy[0] == 405
    assert drf == legacy


def test_head(world: World, legacy_url: str, drf_url: str) -> None:
    for path in ("/bookings/1", "/tours/1/departures"):
        answers = [
            requests.head(url + path, headers={**HEADERS, **HOST}, timeout=5)
            for url in (legacy_url, drf_url)
        ]
        assert [(a.status_code, a.content) for a in answers] == [(200, b"")] * 2


BOOKING = {
    "customer_id": 7,
    "departure_id": 8,
    "travellers": 3,
    "currency": "AUD",
    "total_amount": "999.9",
    "contact_email": "parity@example.com",
}
CUSTOMER = {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
INVALID_WRITES = [
    ("POST", "/bookings", {}),
    ("POST", "/bookings", {**BOOKING, "travellers": 0, "currency": "", "status": "done"}),
    ("POST", "/bookings", {**BOOKING, "customer_id": "x", "departure_id": 1.5}),
    ("POST", "/bookings", {**BOOKING, "customer_id": True, "travellers": "21"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": "1.234"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": "-1"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": "abc", "contact_email": "x@"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": None, "status": None}),
    ("POST", "/bookings", {**BOOKING, "contact_email": ""}),
    ("POST", "/bookings", [BOOKING]),
    ("POST", "/bookings", "text"),
    ("POST", "/customers", {}),
    ("POST", "/customers", {**CUSTOMER, "first_name": "", "last_name": " "}),
    ("POST", "/customers", {**CUSTOMER, "first_name": ["x"], "last_name": "y" * 101}),
    ("POST", "/customers", {**CUSTOMER, "email": 12, "date_of_birth": "2000-13-01"}),
    ("POST", "/customers", {**CUSTOMER, "date_of_birth": "01/02/2000", "nationality": "CAN"}),
    ("POST", "/customers", {**CUSTOMER, "nationality": ["CA"]}),
    ("PUT", "/bookings/1", {"travellers": 2}),
    ("PUT", "/customers/1", {**CUSTOMER, "email": None}),
    ("PATCH", "/bookings/1", {"travellers": 25}),
    ("PATCH", "/bookings/1", {"currency": "JPY", "status": "open"}),
    ("PATCH", "/customers/2", {"first_name": ""}),
    ("PATCH", "/bookings/999999", {"travellers": 25}),
    ("PUT", "/customers/999999", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), INVALID_WRITES)
def test_rejected_writes(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, body: Any
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, method, path, json=body)
    assert legacy[0] in (400, 404)
    assert drf == legacy


@pytest.mark.parametrize("data", [b"", b"{oops", b"null", b"42"])
def test_bodies_that_are_not_json_objects(
    world: World, legacy_url: str, drf_url: str, data: bytes
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, "POST", "/bookings", data=data)
    assert legacy == (400, {"http_status_code": 400, "message": "Invalid JSON body.", "errors": []})
    assert drf == legacy


def stored(world: World, resource: str, pk: int) -> dict[str, Any]:
    record = requests.get(f"{world.url('reservations')}/{resource}/{pk}", timeout=5).json()
    record.pop("id")
    return dict(record)


def without_ids(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in ("id", "href")}


def create_through_both(
    world: World, legacy_url: str, drf_url: str, resource: str, body: Any
) -> list[int]:
    answers = [send(url, "POST", f"/{resource}", json=body) for url in (legacy_url, drf_url)]
    assert [status for status, _ in answers] == [201, 201]
    assert without_ids(answers[1][1]) == without_ids(answers[0][1])
    ids = [obj["id"] for _, obj in answers]
    assert stored(world, resource, ids[1]) == stored(world, resource, ids[0])
    return ids


WRITES = [
    ("bookings", BOOKING, {**BOOKING, "status": "cancelled", "total_amount": 10, "x": 1}),
    ("bookings", {**BOOKING, "travellers": "4", "total_amount": 5.5}, {"travellers": 20.0}),
    ("customers", CUSTOMER, {**CUSTOMER, "date_of_birth": "1906-12-09", "nationality": "us"}),
    ("customers", {**CUSTOMER, "nationality": "GB", "id": 1}, {"email": " g@example.com "}),
]


@pytest.mark.parametrize(("resource", "created", "changed"), WRITES)
def test_writes_leave_the_same_state(
    world: World, legacy_url: str, drf_url: str, resource: str, created: Any, changed: Any
) -> None:
    ids = create_through_both(world, legacy_url, drf_url, resource, created)
    partial = set(changed) < set(created) or "id" in created
    method = "PATCH" if partial else "PUT"
    answers = [
        send(url, method, f"/{resource}/{pk}", json=changed)
        for url, pk in zip((legacy_url, drf_url), ids, strict=True)
    ]
    assert [status for status, _ in answers] == [200, 200]
    assert without_ids(answers[1][1]) == without_ids(answers[0][1])
    assert stored(world, resource, ids[1]) == stored(world, resource, ids[0])


def test_patch_after_put_leaves_the_same_state(world: World, legacy_url: str, drf_url: str) -> None:
    ids = create_through_both(world, legacy_url, drf_url, "bookings", BOOKING)
    for url, pk in zip((legacy_url, drf_url), ids, strict=True):
        assert send(url, "PUT", f"/bookings/{pk}", json=BOOKING)[0] == 200
        assert send(url, "PATCH", f"/bookings/{pk}", json={"status": "confirmed"})[0] == 200
    assert stored(world, "bookings", ids[1]) == stored(world, "bookings", ids[0])


def test_documented_difference_post_to_resource_suffix(
    world: World, legacy_url: str, drf_url: str
) -> None:
    """Legacy accepts `POST /bookings/resource` as `POST /bookings` (outside the contract);
    DRF answers 404."""
    legacy = send(legacy_url, "POST", "/bookings/resource", contract=False, json=BOOKING)
    drf = send(drf_url, "POST", "/bookings/resource", json=BOOKING)
    assert legacy[0] == 201
    assert stored(world, "bookings", legacy[1]["id"])["contact_email"] == BOOKING["contact_email"]
    assert drf == (404, {"http_status_code": 404, "message": "Not found.", "errors": []})
