"""The resource definitions: the table of /work/spec/API.md, as plain dictionaries."""

import pytest

from legacy_flask.resources import (
    READ_ONLY,
    READ_WRITE,
    RESOURCES,
    is_writable,
    read_write_backend,
)


def test_resources_are_the_seven_of_the_api():
    assert list(RESOURCES) == [
        "bookings",
        "customers",
        "departures",
        "tours",
        "itineraries",
        "itinerary_maps",
        "accommodations",
    ]


@pytest.mark.parametrize(
    ("name", "backends"),
    [
        ("bookings", [(READ_WRITE, "reservations", "bookings"), (READ_ONLY, "crm", "bookings")]),
        (
            "customers",
            [(READ_WRITE, "reservations", "customers"), (READ_ONLY, "crm", "customers")],
        ),
        ("departures", [(READ_ONLY, "reservations", "departures")]),
        ("tours", [(READ_ONLY, "operations", "tours")]),
        ("itineraries", [(READ_ONLY, "operations", "itineraries")]),
        ("itinerary_maps", [(READ_ONLY, "operations", "itinerary_maps")]),
        ("accommodations", [(READ_ONLY, "operations", "accommodations")]),
    ],
)
def test_backends_in_merge_order(name, backends):
    assert RESOURCES[name]["backends"] == backends


def test_links_point_at_known_resources():
    links = {name: definition["links"] for name, definition in RESOURCES.items()}
    assert links == {
        "bookings": {"customer_id": "customers", "departure_id": "departures"},
        "customers": {},
        "departures": {"tour_id": "tours"},
        "tours": {},
        "itineraries": {"tour_id": "tours"},
        "itinerary_maps": {"itinerary_id": "itineraries"},
        "accommodations": {},
    }


def test_nested_lists_and_variations():
    assert RESOURCES["tours"]["nested"] == {"departures": {"filter": "tour_id"}}
    assert RESOURCES["itineraries"]["nested"] == {
        "itinerary_maps": {"filter": "itinerary_id", "variation_filter": "variation_id"}
    }
    assert RESOURCES["itineraries"]["variations"]["collection"] == "itinerary_variations"
    assert [n for n, d in RESOURCES.items() if d["variations"] is not None] == ["itineraries"]


def test_only_bookings_and_customers_are_writable_and_to_reservations():
    assert [name for name in RESOURCES if is_writable(name)] == ["bookings", "customers"]
    assert read_write_backend("bookings") == ("reservations", "bookings")
    assert read_write_backend("customers") == ("reservations", "customers")
    with pytest.raises(LookupError):
        read_write_backend("tours")


def test_writable_fields_in_error_order():
    assert list(RESOURCES["bookings"]["writable"]) == [
        "customer_id",
        "departure_id",
        "travellers",
        "currency",
        "total_amount",
        "status",
        "contact_email",
    ]
    assert list(RESOURCES["customers"]["writable"]) == [
        "first_name",
        "last_name",
        "email",
        "date_of_birth",
        "nationality",
    ]
