"""The DRF gateway under gunicorn, against the real source systems (and openapi.yaml)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import HEADERS, RESOURCE_SOURCES, World, make_world
from tests.support.contract import assert_conforms, load_spec
from tests.support.xml_cases import VARY_CASES

ENVELOPE_401 = {
    "http_status_code": 401,
    "message": "Missing or invalid X-Application-Key.",
    "errors": [],
}
ENVELOPE_404 = {"http_status_code": 404, "message": "Not found.", "errors": []}
BOOKING = {
    "customer_id": 3,
    "departure_id": 4,
    "travellers": 2,
    "currency": "EUR",
    "total_amount": "1200.5",
    "contact_email": "new@example.com",
}


def call(drf_url: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**HEADERS, **kwargs.pop("headers", {})}
    response = requests.request(method, drf_url + path, headers=headers, timeout=10, **kwargs)
    body = response.json() if response.content else None
    assert_conforms(load_spec(), method, path, response.status_code, body)
    return response


def source(world: World, system: str, path: str) -> Any:
    return requests.get(f"{world.url(system)}{path}", timeout=5).json()


RESOURCES = RESOURCE_SOURCES


@pytest.mark.parametrize(("resource", "system"), RESOURCES)
def test_every_resource_lists_and_shows_objects(
    drf_url: str, world: World, resource: str, system: str
) -> None:
    expected = source(world, system, f"/{resource}?limit=1")["count"]
    page = call(drf_url, "GET", f"/{resource}?page=2&max_per_page=3").json()
    assert (page["count"], page["current_page"], page["max_per_page"]) == (expected, 2, 3)
    assert [item["id"] for item in page["results"]] == [4, 5, 6]
    assert page["links"] == [
        {"rel": "previous", "href": f"{drf_url}/{resource}?page=1&max_per_page=3"},
        {"rel": "next", "href": f"{drf_url}/{resource}?page=3&max_per_page=3"},
    ]
    one = call(drf_url, "GET", f"/{resource}/5/").json()
    assert one == page["results"][1]
    assert one["href"] == f"{drf_url}/{resource}/5"


def test_bookings_merge_crm_over_reservations(drf_url: str, world: World) -> None:
    booking = call(drf_url, "GET", "/bookings/1").json()
    crm = source(world, "crm", "/bookings/1")
    assert booking["contact_email"] == crm["contact_email"]
    assert booking["sales_channel"] == crm["sales_channel"]
    assert booking["customer"]["href"].startswith(f"{drf_url}/customers/")
    without_crm = call(drf_url, "GET", "/bookings/10").json()
    assert "sales_channel" not in without_crm


def test_links_follow_forwarded_headers(drf_url: str) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}
    tour = call(drf_url, "GET", "/departures/1", headers=headers).json()["tour"]
    assert tour["href"] == f"https://api.example.com/tours/{tour['id']}"


def test_nested_lists_and_variations(drf_url: str, world: World) -> None:
    departures = call(drf_url, "GET", "/tours/2/departures?max_per_page=100").json()
    assert departures["count"] == source(world, "reservations", "/departures?tour_id=2")["count"]
    assert {item["tour"]["id"] for item in departures["results"]} == {2}
    itinerary = call(drf_url, "GET", "/itineraries/3").json()
    assert itinerary["itinerary_maps"] == {"href": f"{drf_url}/itineraries/3/itinerary_maps"}
    stub = itinerary["variations"][0]
    vid = stub["variation_id"]
    assert stub == {"id": 3, "href": f"{drf_url}/itineraries/3/{vid}", "variation_id": vid}
    variation = call(drf_url, "GET", f"/itineraries/3/{vid}").json()
    assert (variation["id"], variation["variation_id"], variation["itinerary"]["id"]) == (3, vid, 3)
    maps = call(drf_url, "GET", f"/itineraries/3/{vid}/itinerary_maps").json()
    assert maps["count"] >= 1
    assert {(m["itinerary"]["id"], m["variation_id"]) for m in maps["results"]} == {(3, vid)}
    all_maps = call(drf_url, "GET", "/itineraries/3/itinerary_maps").json()
    assert all_maps["count"] >= maps["count"]
    assert call(drf_url, "GET", f"/itineraries/4/{vid}").status_code == 404
    assert call(drf_url, "GET", f"/itineraries/4/{vid}/itinerary_maps").status_code == 404
    assert call(drf_url, "GET", "/tours/999/departures").status_code == 404


def test_create_replace_and_patch_a_booking(drf_url: str, world: World) -> None:
    created = call(drf_url, "POST", "/bookings", json=BOOKING)
    assert created.status_code == 201
    obj = created.json()
    stored = source(world, "reservations", f"/bookings/{obj['id']}")
    assert stored["total_amount"] == "1200.50"
    assert stored["status"] == "pending"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", stored["date_created"])
    assert obj["date_created"] == stored["date_created"]
    assert obj["href"] == f"{drf_url}/bookings/{obj['id']}"
    assert obj["customer"] == {"id": 3, "href": f"{drf_url}/customers/3"}
    path = f"/bookings/{obj['id']}"
    patched = call(drf_url, "PATCH", path, json={"status": "confirmed"})
    assert (patched.status_code, patched.json()["status"]) == (200, "confirmed")
    replaced = call(drf_url, "PUT", path, json={**BOOKING, "travellers": 5})
    assert (replaced.status_code, replaced.json()["travellers"]) == (200, 5)
    assert call(drf_url, "GET", path).json() == replaced.json()


def test_create_a_customer(drf_url: str) -> None:
    body = {"first_name": "Ada", "last_name": "King", "email": "ada@example.com"}
    created = call(drf_url, "POST", "/customers/", json={**body, "nationality": "GB"})
    assert created.status_code == 201
    assert {key: created.json()[key] for key in body} == body
    british = {"id": "GB", "href": f"{drf_url}/nationalities/GB", "name": "British"}
    assert created.json()["nationality"] == british


@pytest.mark.parametrize(
    ("method", "path", "body", "errors"),
    [
        (
            "POST",
            "/bookings",
            {**BOOKING, "travellers": 21, "currency": "JPY"},
            [
                {
                    "field": "travellers",
                    "message": "Ensure this value is less than or equal to 20.",
                },
                {"field": "currency", "message": '"JPY" is not a valid choice.'},
            ],
        ),
        (
            "PATCH",
            "/customers/1",
            {"email": "nope", "date_of_birth": "1/2/2000"},
            [
                {"field": "email", "message": "Enter a valid email address."},
                {
                    "field": "date_of_birth",
                    "message": "Date has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DD.",
                },
            ],
        ),
        (
            "GET",
            "/tours?page=0&max_per_page=x",
            None,
            [
                {"field": "page", "message": "A valid integer is required."},
                {"field": "max_per_page", "message": "A valid integer is required."},
            ],
        ),
    ],
)
def test_invalid_data(
    drf_url: str, method: str, path: str, body: Any, errors: list[dict[str, str]]
) -> None:
    response = call(drf_url, method, path, json=body)
    assert response.status_code == 400
    assert response.json() == {
        "http_status_code": 400,
        "message": "Invalid data.",
        "errors": errors,
    }


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object(drf_url: str, data: bytes) -> None:
    response = call(drf_url, "POST", "/bookings", data=data)
    assert (response.status_code, response.json()["message"]) == (400, "Invalid JSON body.")


@pytest.mark.parametrize("path", ["/bookings/1", "/nowhere", "/", "/bookings/resource"])
@pytest.mark.parametrize("key", [None, "wrong"])
def test_every_path_needs_a_key(drf_url: str, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-Application-Key": key}
    response = requests.get(drf_url + path, headers=headers, timeout=5)
    assert (response.status_code, response.json()) == (401, ENVELOPE_401)
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "path",
    [
        "/nowhere",
        "/bookings/0",
        "/bookings/x",
        "/bookings/1/2",
        "/bookings/999999",
        "/tours/1/itinerary_maps",
        "/itineraries/1/999999",
        "/bookings/1/x/y",
    ],
)
def test_not_found(drf_url: str, path: str) -> None:
    response = call(drf_url, "GET", path)
    assert (response.status_code, response.json()) == (404, ENVELOPE_404)
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/bookings/1"),
        ("POST", "/tours"),
        ("PUT", "/tours/1"),
        ("PATCH", "/bookings"),
        ("POST", "/tours/1/departures"),
        ("PUT", "/itineraries/1/1"),
    ],
)
def test_method_not_allowed(drf_url: str, method: str, path: str) -> None:
    response = call(drf_url, method, path, json={})
    assert response.status_code == 405
    assert response.json() == {
        "http_status_code": 405,
        "message": f'Method "{method}" not allowed.',
        "errors": [],
    }


def test_post_to_resource_suffix_is_not_accepted(drf_url: str) -> None:
    response = call(drf_url, "POST", "/bookings/resource", json=BOOKING)
    assert (response.status_code, response.json()) == (404, ENVELOPE_404)


def test_a_stopped_source_system_is_502_for_resources_that_need_it(tmp_path: Path) -> None:
    with make_world(tmp_path) as own:
        url = own.start_drf()
        own.stack.stop("crm")
        down = requests.get(f"{url}/bookings/1", headers=HEADERS, timeout=10)
        assert (down.status_code, down.json()) == (
            502,
            {"http_status_code": 502, "message": "A source system is unavailable.", "errors": []},
        )
        listing = requests.get(f"{url}/customers", headers=HEADERS, timeout=10)
        assert listing.status_code == 502
        assert requests.get(f"{url}/tours/1", headers=HEADERS, timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["/bookings/1", "/tours?page=x", "/nowhere"])
def test_answers_carry_their_length(drf_url: str, path: str) -> None:
    response = requests.get(drf_url + path, headers=HEADERS, timeout=5)
    assert response.headers["Content-Length"] == str(len(response.content))
    assert "Transfer-Encoding" not in response.headers


@pytest.mark.parametrize(("method", "path", "headers", "status", "content_type"), VARY_CASES)
def test_answers_whose_format_accept_chose_vary_on_accept(
    drf_url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    content_type: str,
) -> None:
    """JSON, XML and error answers alike (views' and handler404's), exactly `Vary: Accept`
    (once): a shared cache must not hand one client's XML to another asking for JSON."""
    headers = {**HEADERS, **headers}
    response = requests.request(method, drf_url + path, headers=headers, timeout=10)
    assert (response.status_code, response.headers["Content-Type"]) == (status, content_type)
    assert response.headers["Vary"] == "Accept"


@pytest.mark.parametrize(
    "path", ["/bookings/1?format=xml", "/bookings/1?format=json", "/nowhere?format=xml"]
)
def test_answers_whose_format_the_query_chose_do_not_vary(drf_url: str, path: str) -> None:
    headers = {**HEADERS, "Accept": "application/xml"}
    response = requests.get(drf_url + path, headers=headers, timeout=10)
    assert response.status_code in (200, 404)
    assert "Vary" not in response.headers
