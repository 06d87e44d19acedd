"""Building objects, links and list envelopes: pure functions, no sockets."""

import pytest

from legacy_flask.objects import (
    base_url,
    build_object,
    build_variation,
    list_envelope,
    merge,
    page_links,
)

BASE = "http://api.test"


@pytest.mark.parametrize(
    ("scheme", "host", "proto", "fwd_host", "expected"),
    [
        ("http", "127.0.0.1:5000", None, None, "http://127.0.0.1:5000"),
        ("http", "127.0.0.1:5000", "https", None, "https://127.0.0.1:5000"),
        ("http", "127.0.0.1:5000", None, "api.example.com", "http://api.example.com"),
        ("http", "internal:80", "https", "api.example.com", "https://api.example.com"),
        ("https", "h:443", None, None, "https://h:443"),
    ],
)
def test_base_url(scheme, host, proto, fwd_host, expected):
    assert base_url(scheme, host, proto, fwd_host) == expected


def test_merge_later_source_wins_on_collisions():
    reservations = {"id": 3, "contact_email": "old@example.com", "travellers": 2}
    crm = {"id": 3, "contact_email": "crm@example.com", "agent_notes": "VIP"}
    assert merge([reservations, crm]) == {
        "id": 3,
        "contact_email": "crm@example.com",
        "travellers": 2,
        "agent_notes": "VIP",
    }
    assert reservations["contact_email"] == "old@example.com"


def test_merge_missing_later_record_contributes_nothing():
    assert merge([{"id": 10, "a": 1}, None]) == {"id": 10, "a": 1}


def test_booking_links_and_href():
    record = {"id": 7, "customer_id": 82, "departure_id": None, "status": "pending"}
    assert build_object("bookings", record, BASE) == {
        "id": 7,
        "href": f"{BASE}/bookings/7",
        "customer": {"id": 82, "href": f"{BASE}/customers/82"},
        "departure": None,
        "status": "pending",
    }
    assert "customer_id" in record


def test_itinerary_variations_become_gapipy_stubs_and_nested_lists_links():
    record = {"id": 4, "tour_id": 4, "name": "x", "variation_ids": [9, 10]}
    obj = build_object("itineraries", record, BASE)
    assert obj == {
        "id": 4,
        "href": f"{BASE}/itineraries/4",
        "tour": {"id": 4, "href": f"{BASE}/tours/4"},
        "name": "x",
        "variations": [
            {"id": 4, "href": f"{BASE}/itineraries/4/9", "variation_id": 9},
            {"id": 4, "href": f"{BASE}/itineraries/4/10", "variation_id": 10},
        ],
        "itinerary_maps": {"href": f"{BASE}/itineraries/4/itinerary_maps"},
    }
    assert list(obj) == ["id", "name", "tour", "variations", "itinerary_maps", "href"]


def test_tour_links_its_departures():
    assert build_object("tours", {"id": 3, "name": "t"}, BASE) == {
        "id": 3,
        "name": "t",
        "departures": {"href": f"{BASE}/tours/3/departures"},
        "href": f"{BASE}/tours/3",
    }


def test_nationality_code_becomes_a_reference_in_place():
    record = {"id": 5, "nationality": "IE", "email": "e@x"}
    obj = build_object("customers", record, BASE)
    assert obj == {
        "id": 5,
        "nationality": {"id": "IE", "href": f"{BASE}/nationalities/IE", "name": "Irish"},
        "email": "e@x",
        "href": f"{BASE}/customers/5",
    }
    assert list(obj) == ["id", "nationality", "email", "href"]
    unknown = build_object("customers", {"id": 5, "nationality": "us"}, BASE)["nationality"]
    assert unknown == {"id": "us", "href": f"{BASE}/nationalities/us", "name": None}
    assert "nationality" not in build_object("customers", {"id": 6}, BASE)


def test_itinerary_map_keeps_variation_id():
    record = {"id": 2, "itinerary_id": 1, "variation_id": 2}
    assert build_object("itinerary_maps", record, BASE) == {
        "id": 2,
        "href": f"{BASE}/itinerary_maps/2",
        "itinerary": {"id": 1, "href": f"{BASE}/itineraries/1"},
        "variation_id": 2,
    }


def test_variation_object_is_the_itinerary_with_its_variation_id():
    record = {"id": 5, "itinerary_id": 2, "name": "Low", "days": [{"day": 1, "summary": "s"}]}
    obj = build_variation("itineraries", 2, record, BASE)
    assert obj == {
        "id": 2,
        "variation_id": 5,
        "name": "Low",
        "days": [{"day": 1, "summary": "s"}],
        "itinerary": {"id": 2, "href": f"{BASE}/itineraries/2"},
        "itinerary_maps": {"href": f"{BASE}/itineraries/2/5/itinerary_maps"},
        "href": f"{BASE}/itineraries/2/5",
    }
    assert list(obj) == [
        "id",
        "variation_id",
        "name",
        "days",
        "itinerary",
        "itinerary_maps",
        "href",
    ]


@pytest.mark.parametrize(
    ("page", "per_page", "count", "rels"),
    [
        (1, 20, 200, ["next"]),
        (2, 20, 200, ["previous", "next"]),
        (10, 20, 200, ["previous"]),
        (11, 20, 200, ["previous"]),
        (1, 20, 20, []),
        (1, 20, 21, ["next"]),
        (1, 20, 0, []),
        (3, 100, 50, ["previous"]),
    ],
)
def test_page_links_rels(page, per_page, count, rels):
    assert [link["rel"] for link in page_links("u", page, per_page, count)] == rels


def test_page_links_hrefs():
    assert page_links(f"{BASE}/tours/1/departures", 2, 3, 10) == [
        {"rel": "previous", "href": f"{BASE}/tours/1/departures?page=1&max_per_page=3"},
        {"rel": "next", "href": f"{BASE}/tours/1/departures?page=3&max_per_page=3"},
    ]


def test_list_envelope():
    assert list_envelope([{"id": 1}], 1, 1, 20, f"{BASE}/tours") == {
        "count": 1,
        "current_page": 1,
        "max_per_page": 20,
        "results": [{"id": 1}],
        "links": [],
    }
