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


def test_itinerary_variations_become_links():
    record = {"id": 4, "tour_id": 4, "name": "x", "variation_ids": [9, 10]}
    assert build_object("itineraries", record, BASE) == {
        "id": 4,
        "href": f"{BASE}/itineraries/4",
        "tour": {"id": 4, "href": f"{BASE}/tours/4"},
        "name": "x",
        "variations": [
            {"id": 9, "href": f"{BASE}/itineraries/4/9"},
            {"id": 10, "href": f"{BASE}/itineraries/4/10"},
        ],
    }


def test_itinerary_map_keeps_variation_id():
    record = {"id": 2, "itinerary_id": 1, "variation_id": 2}
    assert build_object("itinerary_maps", record, BASE) == {
        "id": 2,
        "href": f"{BASE}/itinerary_maps/2",
        "itinerary": {"id": 1, "href": f"{BASE}/itineraries/1"},
        "variation_id": 2,
    }


def test_variation_object():
    record = {"id": 5, "itinerary_id": 2, "name": "Low", "days": [{"day": 1, "summary": "s"}]}
    assert build_variation("itineraries", 2, record, BASE) == {
        "id": 5,
        "href": f"{BASE}/itineraries/2/5",
        "itinerary": {"id": 2, "href": f"{BASE}/itineraries/2"},
        "name": "Low",
        "days": [{"day": 1, "summary": "s"}],
    }


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
