"""The legacy gateway under gunicorn, in front of the real source systems (shared world).

Data-changing tests create their own records; seeded ones are only read.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import requests

from legacy_flask.resources import NATIONALITIES
from tests.support import HEADERS, RESOURCE_SOURCES, World
from tests.support.contract import assert_conforms, load_spec
from tests.support.xml_cases import VARY_CASES

Json = Any


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        session.headers.update(HEADERS)
        yield session


def get(http, url: str, path: str, **kwargs) -> requests.Response:
    response = http.get(url + path, **kwargs)
    check_contract("GET", path, response)
    return response


def check_contract(method: str, path: str, response: requests.Response) -> None:
    assert response.headers["Content-Type"] == "application/json"
    assert_conforms(load_spec(), method, path, response.status_code, response.json())


def source(world: World, system: str, path: str) -> Json:
    response = requests.get(f"{world.url(system)}/{path}", timeout=5)
    assert response.status_code == 200, path
    return response.json()


def expected_object(world: World, base: str, resource: str, object_id: int) -> Json:
    """What the API must answer, computed here straight from the source systems."""
    systems = {
        "bookings": [("reservations", "bookings"), ("crm", "bookings")],
        "customers": [("reservations", "customers"), ("crm", "customers")],
        "departures": [("reservations", "departures")],
    }.get(resource, [("operations", resource)])
    merged: dict[str, Any] = {}
    for system, collection in systems:
        answer = requests.get(f"{world.url(system)}/{collection}/{object_id}", timeout=5)
        if answer.status_code == 200:
            merged.update(answer.json())
    links = {
        "customer_id": "customers",
        "departure_id": "departures",
        "tour_id": "tours",
        "itinerary_id": "itineraries",
    }
    for field, target in links.items():
        if field in merged:
            value = merged.pop(field)
            merged[field[:-3]] = {"id": value, "href": f"{base}/{target}/{value}"}
    if "nationality" in merged:
        code = merged["nationality"]
        href = f"{base}/nationalities/{code}"
        merged["nationality"] = {"id": code, "href": href, "name": NATIONALITIES[code]}
    if "variation_ids" in merged and resource == "itineraries":
        merged["variations"] = [
            {"id": object_id, "href": f"{base}/itineraries/{object_id}/{vid}", "variation_id": vid}
            for vid in merged.pop("variation_ids")
        ]
    nested = {"tours": "departures", "itineraries": "itinerary_maps"}.get(resource)
    if nested is not None:
        merged[nested] = {"href": f"{base}/{resource}/{object_id}/{nested}"}
    merged["href"] = f"{base}/{resource}/{object_id}"
    return merged


RESOURCES = RESOURCE_SOURCES


@pytest.mark.parametrize(("resource", "system"), RESOURCES)
def test_list_first_page_is_merged_objects(http, world, legacy_url, resource, system):
    response = get(http, legacy_url, f"/{resource}")
    assert response.status_code == 200
    body = response.json()
    count = source(world, system, f"{resource}?limit=1")["count"]
    assert body["count"] == count
    assert (body["current_page"], body["max_per_page"]) == (1, 20)
    assert [item["id"] for item in body["results"]] == list(range(1, 21))
    assert body["links"] == [
        {"rel": "next", "href": f"{legacy_url}/{resource}?page=2&max_per_page=20"}
    ]
    for item in body["results"][:12]:
        assert item == expected_object(world, legacy_url, resource, item["id"])


@pytest.mark.parametrize(("resource", "object_id"), [(r, i) for r, _ in RESOURCES for i in (1, 10)])
def test_object(http, world, legacy_url, resource, object_id):
    for path in (f"/{resource}/{object_id}", f"/{resource}/{object_id}/"):
        response = get(http, legacy_url, path)
        assert response.status_code == 200
        assert response.json() == expected_object(world, legacy_url, resource, object_id)


def test_crm_wins_on_collisions_and_missing_crm_record_adds_nothing(http, world, legacy_url):
    reservations = source(world, "reservations", "bookings/3")
    crm = source(world, "crm", "bookings/3")
    booking = get(http, legacy_url, "/bookings/3").json()
    assert booking["contact_email"] == crm["contact_email"]
    assert booking["agent_notes"] == crm["agent_notes"]
    assert booking["travellers"] == reservations["travellers"]
    assert requests.get(f"{world.url('crm')}/bookings/10", timeout=5).status_code == 404
    booking = get(http, legacy_url, "/bookings/10").json()
    assert "agent_notes" not in booking
    customer = get(http, legacy_url, "/customers/5").json()
    assert customer["email"] == source(world, "crm", "customers/5")["email"]


# Exact counts use read-only resources: other tests in the shared world create bookings
# and customers.
def test_pagination_exact_ids_and_links(http, legacy_url):
    body = get(http, legacy_url, "/departures/?page=3&max_per_page=7").json()
    assert [item["id"] for item in body["results"]] == list(range(15, 22))
    assert (body["count"], body["current_page"], body["max_per_page"]) == (177, 3, 7)
    assert body["links"] == [
        {"rel": "previous", "href": f"{legacy_url}/departures?page=2&max_per_page=7"},
        {"rel": "next", "href": f"{legacy_url}/departures?page=4&max_per_page=7"},
    ]


def test_last_page_and_past_the_end(http, legacy_url):
    body = get(http, legacy_url, "/tours?page=3&max_per_page=20").json()
    assert [item["id"] for item in body["results"]] == list(range(41, 51))
    assert [link["rel"] for link in body["links"]] == ["previous"]
    body = get(http, legacy_url, "/tours?page=9").json()
    assert body["results"] == []
    assert body["count"] == 50
    assert body["links"] == [
        {"rel": "previous", "href": f"{legacy_url}/tours?page=8&max_per_page=20"}
    ]


def test_max_per_page_capped_at_100(http, legacy_url):
    body = get(http, legacy_url, "/bookings?max_per_page=1000").json()
    assert body["max_per_page"] == 100
    assert [item["id"] for item in body["results"]] == list(range(1, 101))
    assert body["links"][0]["href"] == f"{legacy_url}/bookings?page=2&max_per_page=100"


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("page=0", ["page"]),
        ("page=abc", ["page"]),
        ("max_per_page=-3", ["max_per_page"]),
        ("page=&max_per_page=1.5", ["page", "max_per_page"]),
    ],
)
def test_bad_paging_is_400(http, legacy_url, query, fields):
    response = get(http, legacy_url, f"/tours?{query}")
    assert response.status_code == 400
    assert response.json() == {
        "http_status_code": 400,
        "message": "Invalid data.",
        "errors": [{"field": f, "message": "A valid integer is required."} for f in fields],
    }


def test_nested_departures_of_a_tour(http, world, legacy_url):
    departures = source(world, "reservations", "departures?tour_id=2&limit=1000")
    body = get(http, legacy_url, "/tours/2/departures/?max_per_page=1").json()
    assert body["count"] == departures["count"] >= 2
    assert [item["id"] for item in body["results"]] == [departures["items"][0]["id"]]
    assert body["results"][0]["tour"] == {"id": 2, "href": f"{legacy_url}/tours/2"}
    assert body["links"] == [
        {"rel": "next", "href": f"{legacy_url}/tours/2/departures?page=2&max_per_page=1"}
    ]


def test_itinerary_variation_and_maps(http, world, legacy_url):
    itinerary = get(http, legacy_url, "/itineraries/3").json()
    variation_ids = source(world, "operations", "itineraries/3")["variation_ids"]
    assert [v["variation_id"] for v in itinerary["variations"]] == variation_ids
    assert {v["id"] for v in itinerary["variations"]} == {3}
    vid = variation_ids[-1]
    record = source(world, "operations", f"itinerary_variations/{vid}")
    response = get(http, legacy_url, f"/itineraries/3/{vid}/")
    assert response.status_code == 200
    expected = {"id": 3, "variation_id": vid}
    expected |= {k: v for k, v in record.items() if k not in ("id", "itinerary_id")}
    expected |= {
        "itinerary": {"id": 3, "href": f"{legacy_url}/itineraries/3"},
        "itinerary_maps": {"href": f"{legacy_url}/itineraries/3/{vid}/itinerary_maps"},
        "href": f"{legacy_url}/itineraries/3/{vid}",
    }
    assert response.json() == expected
    maps = source(world, "operations", f"itinerary_maps?itinerary_id=3&variation_id={vid}")
    body = get(http, legacy_url, f"/itineraries/3/{vid}/itinerary_maps").json()
    assert body["count"] == maps["count"] >= 1
    assert [m["id"] for m in body["results"]] == [m["id"] for m in maps["items"]]
    assert {m["variation_id"] for m in body["results"]} == {vid}
    all_maps = source(world, "operations", "itinerary_maps?itinerary_id=3")
    body = get(http, legacy_url, "/itineraries/3/itinerary_maps").json()
    assert [m["id"] for m in body["results"]] == [m["id"] for m in all_maps["items"]]


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/bookings/0",
        "/bookings/99999",
        "/bookings/abc",
        "/bookings/resource",
        "/tours/99999/departures",
        "/tours/1/itinerary_maps",
        "/itineraries/99999/1",
        "/itineraries/1/99999/itinerary_maps",
        "/accommodations/1/2",
    ],
)
def test_not_found(http, legacy_url, path):
    response = http.get(legacy_url + path)
    assert response.status_code == 404
    assert response.json() == {"http_status_code": 404, "message": "Not found.", "errors": []}
    if path != "/bookings/resource":
        check_contract("GET", path, response)


def test_variation_of_another_itinerary_is_404(http, world, legacy_url):
    vid = source(world, "operations", "itineraries/4")["variation_ids"][0]
    assert http.get(f"{legacy_url}/itineraries/5/{vid}").status_code == 404
    assert http.get(f"{legacy_url}/itineraries/5/{vid}/itinerary_maps").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/bookings/1"),
        ("POST", "/tours"),
        ("PUT", "/accommodations/1"),
        ("PATCH", "/tours/1/departures"),
    ],
)
def test_method_not_allowed(http, legacy_url, method, path):
    response = http.request(method, legacy_url + path, json={})
    assert response.status_code == 405
    assert response.json() == {
        "http_status_code": 405,
        "message": f'Method "{method}" not allowed.',
        "errors": [],
    }
    check_contract(method, path, response)


def test_missing_key_is_401(legacy_url):
    response = requests.get(f"{legacy_url}/bookings/1", timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "http_status_code": 401,
        "message": "Missing or invalid X-Application-Key.",
        "errors": [],
    }
    check_contract("GET", "/bookings/1", response)


def test_href_from_forwarded_headers(http, legacy_url):
    headers = {"X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "https"}
    booking = get(http, legacy_url, "/bookings/1", headers=headers).json()
    assert booking["href"] == "https://api.example.com/bookings/1"
    assert booking["customer"]["href"].startswith("https://api.example.com/customers/")
    body = get(http, legacy_url, "/tours?page=2", headers={"Host": "gw.test:81"}).json()
    assert body["results"][0]["href"] == "http://gw.test:81/tours/21"
    assert body["links"][0]["href"] == "http://gw.test:81/tours?page=1&max_per_page=20"


NEW_BOOKING = {
    "customer_id": 4,
    "departure_id": 5,
    "travellers": 2,
    "currency": "EUR",
    "total_amount": "1999.5",
    "contact_email": "new@example.com",
    "agent_notes": "ignored: not a writable field",
}


def assert_made_since(date_created: str, since: datetime.datetime) -> None:
    """`date_created` is a UTC date-time to the second (gapipy's format), between `since`
    (to the second) and now."""
    made = datetime.datetime.strptime(date_created, "%Y-%m-%dT%H:%M:%SZ")
    made = made.replace(tzinfo=datetime.UTC)
    assert since.replace(microsecond=0) <= made <= datetime.datetime.now(datetime.UTC)


def create(http, legacy_url, path, body) -> Json:
    response = http.post(legacy_url + path, json=body)
    assert response.status_code == 201, response.text
    check_contract("POST", "/" + path.strip("/").split("/")[0], response)
    return response.json()


@pytest.mark.parametrize("path", ["/bookings", "/bookings/", "/bookings/resource"])
def test_create_booking(http, world, legacy_url, path):
    since = datetime.datetime.now(datetime.UTC)
    created = create(http, legacy_url, path, NEW_BOOKING)
    new_id = created["id"]
    assert_made_since(created["date_created"], since)
    assert created == {
        "id": new_id,
        "href": f"{legacy_url}/bookings/{new_id}",
        "customer": {"id": 4, "href": f"{legacy_url}/customers/4"},
        "departure": {"id": 5, "href": f"{legacy_url}/departures/5"},
        "travellers": 2,
        "currency": "EUR",
        "total_amount": "1999.50",
        "contact_email": "new@example.com",
        "status": "pending",
        "date_created": created["date_created"],
    }
    assert get(http, legacy_url, f"/bookings/{new_id}").json() == created
    assert source(world, "reservations", f"bookings/{new_id}")["total_amount"] == "1999.50"
    crm = requests.get(f"{world.url('crm')}/bookings/{new_id}", timeout=5)
    assert crm.status_code == 404


def test_put_and_patch_booking_reach_only_reservations(http, world, legacy_url):
    new_id = create(http, legacy_url, "/bookings", NEW_BOOKING)["id"]
    crm_count = source(world, "crm", "bookings?limit=1")["count"]
    replacement = {**NEW_BOOKING, "travellers": 3, "status": "confirmed", "total_amount": 10}
    response = http.put(f"{legacy_url}/bookings/{new_id}/", json=replacement)
    assert response.status_code == 200
    check_contract("PUT", f"/bookings/{new_id}", response)
    assert response.json()["travellers"] == 3
    assert response.json()["total_amount"] == "10.00"
    response = http.patch(f"{legacy_url}/bookings/{new_id}", json={"status": "cancelled"})
    assert response.status_code == 200
    check_contract("PATCH", f"/bookings/{new_id}", response)
    after = get(http, legacy_url, f"/bookings/{new_id}").json()
    assert after == response.json()
    assert (after["status"], after["travellers"], after["currency"]) == ("cancelled", 3, "EUR")
    assert source(world, "crm", "bookings?limit=1")["count"] == crm_count
    assert requests.get(f"{world.url('crm')}/bookings/{new_id}", timeout=5).status_code == 404


def test_put_keeps_date_created_and_omitted_optional_fields(http, world, legacy_url):
    since = datetime.datetime.now(datetime.UTC)
    new_id = create(http, legacy_url, "/bookings", {**NEW_BOOKING, "status": "confirmed"})["id"]
    before = source(world, "reservations", f"bookings/{new_id}")
    required = {k: v for k, v in NEW_BOOKING.items() if k not in ("contact_email", "agent_notes")}
    response = http.put(f"{legacy_url}/bookings/{new_id}", json={**required, "travellers": 7})
    assert response.status_code == 200
    assert source(world, "reservations", f"bookings/{new_id}") == {**before, "travellers": 7}
    assert (before["status"], before["contact_email"]) == ("confirmed", "new@example.com")
    assert_made_since(before["date_created"], since)


def test_customer_writes(http, world, legacy_url):
    body = {"first_name": " Grace ", "last_name": "Hopper", "email": "grace@example.com"}
    created = create(http, legacy_url, "/customers/resource/", body)
    new_id = created["id"]
    assert created == {
        "id": new_id,
        "href": f"{legacy_url}/customers/{new_id}",
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@example.com",
    }
    full = {**body, "date_of_birth": "1906-12-09", "nationality": "US"}
    response = http.put(f"{legacy_url}/customers/{new_id}", json=full)
    assert response.status_code == 200
    response = http.patch(f"{legacy_url}/customers/{new_id}", json={"last_name": "Murray"})
    assert response.json()["last_name"] == "Murray"
    american = {"id": "US", "href": f"{legacy_url}/nationalities/US", "name": "American"}
    assert get(http, legacy_url, f"/customers/{new_id}").json() == {
        **created,
        "last_name": "Murray",
        "date_of_birth": "1906-12-09",
        "nationality": american,
    }
    # The nationality as reads show it is accepted back; its id is what is stored.
    response = http.patch(f"{legacy_url}/customers/{new_id}", json={"nationality": american})
    assert response.json()["nationality"] == american
    assert source(world, "reservations", f"customers/{new_id}")["nationality"] == "US"
    assert requests.get(f"{world.url('crm')}/customers/{new_id}", timeout=5).status_code == 404


def test_validation_errors(http, legacy_url):
    body = {**NEW_BOOKING, "customer_id": "x", "travellers": 21, "currency": "JPY"}
    del body["departure_id"]
    response = http.post(f"{legacy_url}/bookings", json=body)
    assert response.status_code == 400
    check_contract("POST", "/bookings", response)
    assert response.json() == {
        "http_status_code": 400,
        "message": "Invalid data.",
        "errors": [
            {"field": "customer_id", "message": "A valid integer is required."},
            {"field": "departure_id", "message": "This field is required."},
            {"field": "travellers", "message": "Ensure this value is less than or equal to 20."},
            {"field": "currency", "message": '"JPY" is not a valid choice.'},
        ],
    }
    response = http.patch(f"{legacy_url}/customers/1", json={"email": "nope", "nationality": "X"})
    assert response.json() == {
        "http_status_code": 400,
        "message": "Invalid data.",
        "errors": [
            {"field": "email", "message": "Enter a valid email address."},
            {"field": "nationality", "message": '"X" is not a valid choice.'},
        ],
    }


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b"", b"null"])
def test_body_not_a_json_object(http, legacy_url, data):
    response = http.post(f"{legacy_url}/bookings", data=data)
    assert response.status_code == 400
    assert response.json() == {
        "http_status_code": 400,
        "message": "Invalid JSON body.",
        "errors": [],
    }
    check_contract("POST", "/bookings", response)


def test_write_to_missing_object_is_404(http, legacy_url):
    for method in ("PUT", "PATCH"):
        response = http.request(method, f"{legacy_url}/bookings/99999", json=NEW_BOOKING)
        assert response.status_code == 404
        check_contract(method, "/bookings/99999", response)


def test_head_and_options(http, legacy_url):
    response = http.head(f"{legacy_url}/tours/1")
    assert (response.status_code, response.content) == (200, b"")
    response = http.options(f"{legacy_url}/bookings/1")
    assert response.status_code == 200
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, PUT, PATCH"


@pytest.mark.parametrize(("method", "path", "headers", "status", "content_type"), VARY_CASES)
def test_answers_whose_format_accept_chose_vary_on_accept(
    http, legacy_url, method, path, headers, status, content_type
):
    """JSON, XML and error answers alike, exactly `Vary: Accept` (once): a shared cache must
    not hand one client's XML to another asking for JSON."""
    response = http.request(method, legacy_url + path, headers=headers)
    assert (response.status_code, response.headers["Content-Type"]) == (status, content_type)
    assert response.headers["Vary"] == "Accept"


@pytest.mark.parametrize(
    "path", ["/bookings/1?format=xml", "/bookings/1?format=json", "/nowhere?format=xml"]
)
def test_answers_whose_format_the_query_chose_do_not_vary(http, legacy_url, path):
    response = http.get(legacy_url + path, headers={"Accept": "application/xml"})
    assert response.status_code in (200, 404)
    assert "Vary" not in response.headers
