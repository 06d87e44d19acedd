"""CRM: what sales and support know about bookings and customers.

Every 10th booking (ids 10, 20, ...) has no CRM record. Some customers have a newer email
here than in reservations, and some bookings a different contact email (the CRM wins).
"""

from __future__ import annotations

import random

from source_systems import demo, reservations
from source_systems.system import Record, Records, System

SEED = 5102
TIERS = ("none", "silver", "gold", "platinum")
TIER_WEIGHTS = (5, 3, 2, 1)
CHANNELS = ("web", "agent", "phone")
CUSTOMER_NOTES = (
    "",
    "",
    "Prefers aisle seats.",
    "Vegetarian.",
    "Travels with a partner; ask about twin rooms.",
    "Called twice about travel insurance.",
    "Repeat traveller, sent a thank-you card.",
    "Gluten free.",
    "Interested in Antarctica next year.",
    "Asked for paper invoices.",
)
BOOKING_NOTES = (
    "",
    "",
    "",
    "Paid deposit by card.",
    "Requested a room upgrade.",
    "Arrives a day early.",
    "Needs airport transfer.",
    "Celebrating an anniversary.",
    "Asked about single supplement.",
    "Booked after a webinar.",
)


def customers(rng: random.Random) -> list[Record]:
    result: list[Record] = []
    for number, person in enumerate(demo.people(), start=1):
        email = person.email
        if rng.random() < 0.2:
            email = f"{demo.email_local(person.first_name, person.last_name)}@work.example.com"
        result.append(
            {
                "id": number,
                "loyalty_tier": rng.choices(TIERS, TIER_WEIGHTS)[0],
                "contact_preferences": {
                    "email": rng.random() < 0.9,
                    "sms": rng.random() < 0.4,
                    "phone": rng.random() < 0.2,
                },
                "agent_notes": rng.choice(CUSTOMER_NOTES),
                "email": email,
            }
        )
    return result


def bookings(rng: random.Random, people: list[Record], booked: list[Record]) -> list[Record]:
    """CRM records of the reservations' bookings, skipping every 10th."""
    result: list[Record] = []
    for booking in booked:
        email = booking["contact_email"]
        if rng.random() < 0.3:
            person = people[booking["customer_id"] - 1]
            email = (
                f"{demo.email_local(person['first_name'], person['last_name'])}@trips.example.com"
            )
        if booking["id"] % 10:
            result.append(
                {
                    "id": booking["id"],
                    "agent_notes": rng.choice(BOOKING_NOTES),
                    "sales_channel": rng.choices(CHANNELS, (6, 3, 1))[0],
                    "contact_email": email,
                }
            )
    return result


def seed() -> Records:
    rng = random.Random(SEED)
    source = reservations.seed()
    return {
        "bookings": bookings(rng, source["customers"], source["bookings"]),
        "customers": customers(rng),
    }


SYSTEM = System(name="crm", collections=("bookings", "customers"), indexes=(), seed=seed)
