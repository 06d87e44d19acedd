"""The resource definitions, as the original gateway kept them: plain dictionaries.

Each resource names its backends in merge order as ``(mode, system, collection)``; the
first one is the record of truth (its 404 is the resource's 404), later ones add or
override fields. ``links`` turns ``<name>_id`` fields into link objects, ``references``
turns stored codes into reference objects (``{"id", "href", "name"}``, names from a table),
``variations`` names the collection holding the resource's variations, ``nested`` the child
lists reachable under one object (each object links them as ``{"href"}``), ``writable`` the
validation rules of the fields a client may send (in the order errors are reported).
"""

from typing import Any

READ_WRITE = "read_write"
READ_ONLY = "read_only"

CURRENCIES = ["CAD", "USD", "EUR", "GBP", "AUD"]
BOOKING_STATUSES = ["pending", "confirmed", "cancelled"]
# The nationalities the demo knows, by the ISO code the reservations system stores; a
# customer's nationality is one of them, shown as the G API's Nationality stub.
NATIONALITIES = {
    "AU": "Australian",
    "CA": "Canadian",
    "DE": "German",
    "ES": "Spanish",
    "FR": "French",
    "GB": "British",
    "IE": "Irish",
    "IN": "Indian",
    "IT": "Italian",
    "JP": "Japanese",
    "NL": "Dutch",
    "NZ": "New Zealander",
    "SE": "Swedish",
    "US": "American",
}

RESOURCES: dict[str, dict[str, Any]] = {
    "bookings": {
        "backends": [
            (READ_WRITE, "reservations", "bookings"),
            (READ_ONLY, "crm", "bookings"),
        ],
        "links": {"customer_id": "customers", "departure_id": "departures"},
        "references": {},
        "variations": None,
        "nested": {},
        "writable": {
            "customer_id": {"type": "integer", "required": True, "min_value": 1},
            "departure_id": {"type": "integer", "required": True, "min_value": 1},
            "travellers": {"type": "integer", "required": True, "min_value": 1, "max_value": 20},
            "currency": {"type": "choice", "required": True, "choices": CURRENCIES},
            "total_amount": {
                "type": "decimal",
                "required": True,
                "decimal_places": 2,
                "min_value": 0,
            },
            "status": {"type": "choice", "required": False, "choices": BOOKING_STATUSES},
            "contact_email": {"type": "email", "required": False},
        },
        "create_defaults": {"status": "pending"},
        "create_now": "date_created",
    },
    "customers": {
        "backends": [
            (READ_WRITE, "reservations", "customers"),
            (READ_ONLY, "crm", "customers"),
        ],
        "links": {},
        "references": {"nationality": ("nationalities", NATIONALITIES)},
        "variations": None,
        "nested": {},
        "writable": {
            "first_name": {"type": "string", "required": True, "max_length": 100},
            "last_name": {"type": "string", "required": True, "max_length": 100},
            "email": {"type": "email", "required": True},
            "date_of_birth": {"type": "date", "required": False},
            "nationality": {"type": "reference", "required": False, "choices": NATIONALITIES},
        },
        "create_defaults": {},
        "create_now": None,
    },
    "departures": {
        "backends": [(READ_ONLY, "reservations", "departures")],
        "links": {"tour_id": "tours"},
        "references": {},
        "variations": None,
        "nested": {},
        "writable": None,
    },
    "tours": {
        "backends": [(READ_ONLY, "operations", "tours")],
        "links": {},
        "references": {},
        "variations": None,
        "nested": {"departures": {"filter": "tour_id"}},
        "writable": None,
    },
    "itineraries": {
        "backends": [(READ_ONLY, "operations", "itineraries")],
        "links": {"tour_id": "tours"},
        "references": {},
        "variations": {
            "system": "operations",
            "collection": "itinerary_variations",
            "ids_field": "variation_ids",
            "parent_field": "itinerary_id",
            "parent_link": "itinerary",
        },
        "nested": {
            "itinerary_maps": {"filter": "itinerary_id", "variation_filter": "variation_id"},
        },
        "writable": None,
    },
    "itinerary_maps": {
        "backends": [(READ_ONLY, "operations", "itinerary_maps")],
        "links": {"itinerary_id": "itineraries"},
        "references": {},
        "variations": None,
        "nested": {},
        "writable": None,
    },
    "accommodations": {
        "backends": [(READ_ONLY, "operations", "accommodations")],
        "links": {},
        "references": {},
        "variations": None,
        "nested": {},
        "writable": None,
    },
}


def is_writable(name: str) -> bool:
    """True when clients may create and change records of resource `name`."""
    return RESOURCES[name]["writable"] is not None


def read_write_backend(name: str) -> tuple[str, str]:
    """The ``(system, collection)`` writes of resource `name` go to."""
    for mode, system, collection in RESOURCES[name]["backends"]:
        if mode == READ_WRITE:
            return system, collection
    raise LookupError(f"{name} has no read-write backend")
