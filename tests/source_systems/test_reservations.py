"""The reservations seed: counts, shapes and links, checked on the pure seed function."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

from source_systems import reservations

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MONEY = re.compile(r"\d+\.\d{2}")


def test_seed_is_deterministic() -> None:
    assert reservations.seed() == reservations.seed()


def test_counts_and_ids() -> None:
    data = reservations.seed()
    assert [item["id"] for item in data["customers"]] == list(range(1, 101))
    assert [item["id"] for item in data["bookings"]] == list(range(1, 201))
    assert [item["id"] for item in data["departures"]] == list(range(1, 178))


def test_customers_have_the_spec_fields() -> None:
    for customer in reservations.seed()["customers"]:
        assert set(customer) == {
            "id",
            "first_name",
            "last_name",
            "email",
            "date_of_birth",
            "nationality",
        }
        assert DATE.fullmatch(customer["date_of_birth"])
        assert re.fullmatch(r"[a-z.]+\d+@[a-z.]+", customer["email"])
        assert re.fullmatch(r"[A-Z]{2}", customer["nationality"])


def test_every_tour_has_at_least_two_departures_with_consistent_dates() -> None:
    departures = reservations.seed()["departures"]
    per_tour = Counter(item["tour_id"] for item in departures)
    assert sorted(per_tour) == list(range(1, 51))
    assert min(per_tour.values()) >= 2
    for item in departures:
        assert date.fromisoformat(item["finish_date"]) > date.fromisoformat(item["start_date"])
        assert MONEY.fullmatch(item["price_amount"])
        assert type(item["availability"]) is int
        assert item["currency"] in reservations.CURRENCIES


def test_bookings_point_at_seeded_records_and_add_up() -> None:
    data = reservations.seed()
    customers = {item["id"]: item for item in data["customers"]}
    departures = {item["id"]: item for item in data["departures"]}
    for booking in data["bookings"]:
        departure = departures[booking["departure_id"]]
        assert booking["contact_email"] == customers[booking["customer_id"]]["email"]
        assert booking["status"] in ("pending", "confirmed", "cancelled")
        assert 1 <= booking["travellers"] <= 20
        assert MONEY.fullmatch(booking["total_amount"])
        price = Decimal(departure["price_amount"]) * booking["travellers"]
        assert Decimal(booking["total_amount"]) == price
        # A UTC date-time to the second, as gapipy reads Booking.date_created.
        booked = datetime.strptime(booking["date_created"], "%Y-%m-%dT%H:%M:%SZ").date()
        assert booked <= date.fromisoformat(departure["start_date"]) - timedelta(days=21)
    assert {booking["status"] for booking in data["bookings"]} == set(reservations.STATUSES)
