"""Reservations: customers, departures of the tours, and bookings."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from source_systems import demo
from source_systems.system import Record, Records, System

SEED = 5101
CURRENCIES = ("CAD", "USD", "EUR", "GBP", "AUD")
STATUSES = ("pending", "confirmed", "cancelled")
STATUS_WEIGHTS = (2, 7, 1)
DAILY_PRICE = {
    "Classic": 95,
    "Active": 85,
    "Comfort": 160,
    "Local Living": 120,
    "Wildlife": 140,
    "18 to 30s": 70,
}


def money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


def customers() -> list[Record]:
    return [
        {
            "id": number,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "email": person.email,
            "date_of_birth": person.date_of_birth,
            "nationality": person.nationality,
        }
        for number, person in enumerate(demo.people(), start=1)
    ]


def departures(rng: random.Random) -> list[Record]:
    """Three or four departures per tour, ids in tour order."""
    result: list[Record] = []
    for tour_id, tour in enumerate(demo.tours(), start=1):
        for _ in range(rng.choice((3, 4))):
            start = demo.random_date(rng, date(2025, 3, 1), date(2026, 12, 31))
            price = DAILY_PRICE[tour.product_line] * tour.duration_days + rng.choice((0, 49, 99))
            result.append(
                {
                    "id": len(result) + 1,
                    "tour_id": tour_id,
                    "start_date": start.isoformat(),
                    "finish_date": (start + timedelta(days=tour.duration_days - 1)).isoformat(),
                    "availability": rng.randint(0, 16),
                    "price_amount": money(Decimal(price)),
                    "currency": rng.choice(CURRENCIES),
                }
            )
    return result


def created_at(day: date, number: int) -> str:
    """When booking `number` was made on `day`, in UTC to the second, as the API writes it.

    The time of day comes from the number, not the random generator, so the other seeded
    fields stay what they were: `created_at(date(2026, 1, 5), 7)` -> `"2026-01-05T14:59:37Z"`.
    """
    moment = time(7 + number * 7 % 14, number * 17 % 60, number * 31 % 60, tzinfo=UTC)
    return datetime.combine(day, moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def bookings(rng: random.Random, people: list[Record], trips: list[Record]) -> list[Record]:
    result: list[Record] = []
    for number in range(1, 201):
        customer, departure = rng.choice(people), rng.choice(trips)
        travellers = rng.choice((1, 1, 2, 2, 2, 3, 4)) if number % 25 else rng.randint(8, 20)
        booked = date.fromisoformat(departure["start_date"]) - timedelta(days=rng.randint(21, 330))
        result.append(
            {
                "id": number,
                "customer_id": customer["id"],
                "departure_id": departure["id"],
                "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                "travellers": travellers,
                "currency": departure["currency"],
                "total_amount": money(Decimal(departure["price_amount"]) * travellers),
                "date_created": created_at(booked, number),
                "contact_email": customer["email"],
            }
        )
    return result


def seed() -> Records:
    rng = random.Random(SEED)
    people = customers()
    trips = departures(rng)
    return {"customers": people, "departures": trips, "bookings": bookings(rng, people, trips)}


SYSTEM = System(
    name="reservations",
    collections=("customers", "departures", "bookings"),
    indexes=(("departures", "tour_id"), ("bookings", "customer_id"), ("bookings", "departure_id")),
    seed=seed,
)
