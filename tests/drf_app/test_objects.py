from __future__ import annotations

import pytest

from drf_app.objects import Reference, base_url, build_object, build_variation, merge_records

BASE = "https://api.test"


def test_later_records_win_on_collision_and_missing_records_add_nothing() -> None:
    records = [{"id": 1, "a": 1, "email": "first"}, None, {"id": 1, "email": "last", "b": 2}]
    assert merge_records(records) == {"id": 1, "a": 1, "email": "last", "b": 2}


def test_links_replace_id_fields_and_null_stays_null() -> None:
    obj = build_object(
        "bookings",
        7,
        [{"id": 7, "customer_id": 3, "departure_id": None}],
        {"customer_id": "customers", "departure_id": "departures"},
        BASE,
    )
    assert obj == {
        "id": 7,
        "customer": {"id": 3, "href": "https://api.test/customers/3"},
        "departure": None,
        "href": "https://api.test/bookings/7",
    }


def test_variation_ids_become_gapipy_stubs_under_the_object() -> None:
    obj = build_object(
        "itineraries", 4, [{"id": 4, "variation_ids": [8, 9]}], {}, BASE, variations=True
    )
    assert obj["variations"] == [
        {"id": 4, "href": "https://api.test/itineraries/4/8", "variation_id": 8},
        {"id": 4, "href": "https://api.test/itineraries/4/9", "variation_id": 9},
    ]
    assert "variation_ids" not in obj


def test_nested_lists_are_linked_before_the_href() -> None:
    obj = build_object("tours", 3, [{"id": 3, "name": "t"}], {}, BASE, nested=["departures"])
    assert list(obj.items()) == [
        ("id", 3),
        ("name", "t"),
        ("departures", {"href": "https://api.test/tours/3/departures"}),
        ("href", "https://api.test/tours/3"),
    ]


def test_references_replace_codes_in_place() -> None:
    references = {"nationality": Reference("nationalities", {"IE": "Irish"})}
    records = [{"id": 5, "nationality": "IE", "email": "e"}]
    obj = build_object("customers", 5, records, {}, BASE, references=references)
    assert list(obj.items()) == [
        ("id", 5),
        ("nationality", {"id": "IE", "href": f"{BASE}/nationalities/IE", "name": "Irish"}),
        ("email", "e"),
        ("href", f"{BASE}/customers/5"),
    ]
    unknown = build_object(
        "customers", 5, [{"id": 5, "nationality": "us"}], {}, BASE, references=references
    )
    assert unknown["nationality"] == {"id": "us", "href": f"{BASE}/nationalities/us", "name": None}


def test_a_variation_is_its_parent_with_a_variation_id() -> None:
    record = {"id": 9, "itinerary_id": 4, "name": "v"}
    obj = build_variation("itineraries", 4, 9, record, "itinerary_id", BASE, ["itinerary_maps"])
    assert list(obj.items()) == [
        ("id", 4),
        ("variation_id", 9),
        ("name", "v"),
        ("itinerary", {"id": 4, "href": "https://api.test/itineraries/4"}),
        ("itinerary_maps", {"href": "https://api.test/itineraries/4/9/itinerary_maps"}),
        ("href", "https://api.test/itineraries/4/9"),
    ]


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"HTTP_HOST": "h:1"}, "http://h:1"),
        ({"HTTP_HOST": "h:1", "HTTP_X_FORWARDED_PROTO": "https"}, "https://h:1"),
        ({"HTTP_HOST": "h:1", "HTTP_X_FORWARDED_HOST": "api.example"}, "http://api.example"),
    ],
)
def test_base_url_prefers_forwarded_headers(meta: dict[str, str], expected: str) -> None:
    assert base_url(meta, "http") == expected
