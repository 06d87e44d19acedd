"""Operations: tours, their itineraries (with variations and maps), accommodations."""

from __future__ import annotations

import random
from datetime import date

from source_systems import demo
from source_systems.system import Record, Records, System

SEED = 5103
VARIATION_NAMES = ("Standard", "Reverse", "Festival Season", "Low Season", "Extended")
MIDDLE_DAYS = (
    "Guided walking tour of {city}.",
    "Free day in {city} for optional activities.",
    "Travel to {city} by private vehicle.",
    "Morning market visit and cooking class in {city}.",
    "Day trip from {city} with a local guide.",
    "Homestay dinner near {city}.",
    "Cycle the back roads around {city}.",
    "Sunrise viewpoint and museum visit in {city}.",
)
AMENITIES = (
    "wifi",
    "breakfast",
    "pool",
    "air conditioning",
    "restaurant",
    "bar",
    "gym",
    "laundry",
    "parking",
    "spa",
    "garden",
    "airport shuttle",
)
STAY_NAMES = (
    "Hotel {city} Central",
    "{city} Guesthouse",
    "Casa {city}",
    "{city} Riverside Lodge",
    "Grand Hotel {city}",
    "{city} Boutique Suites",
    "{city} Eco Camp",
)


def tours() -> list[Record]:
    return [
        {
            "id": number,
            "name": tour.name,
            "duration_days": tour.duration_days,
            "region": tour.region,
            "product_line": tour.product_line,
        }
        for number, tour in enumerate(demo.tours(), start=1)
    ]


def days(rng: random.Random, tour: demo.Tour, cities: list[str]) -> list[Record]:
    """One entry per day: arrive in the first city, move through the rest, depart the last."""
    count = tour.duration_days
    plan = [{"day": 1, "summary": f"Arrive in {cities[0]}. Welcome meeting at 6pm."}]
    for day in range(2, count):
        city = cities[min(len(cities) - 1, (day - 1) * len(cities) // (count - 1))]
        plan.append({"day": day, "summary": rng.choice(MIDDLE_DAYS).format(city=city)})
    plan.append({"day": count, "summary": f"Depart {cities[-1]} at any time."})
    return plan


def variations(
    rng: random.Random, itinerary_id: int, tour: demo.Tour, first_id: int
) -> list[Record]:
    cities = [city for city, _ in tour.cities]
    result: list[Record] = []
    for offset, name in enumerate(rng.sample(VARIATION_NAMES, rng.choice((2, 3)))):
        year = 2025 + offset % 2
        route = list(reversed(cities)) if name == "Reverse" else cities
        result.append(
            {
                "id": first_id + offset,
                "itinerary_id": itinerary_id,
                "name": f"{year} {name}",
                "valid_from": demo.random_date(
                    rng, date(year, 1, 1), date(year, 6, 30)
                ).isoformat(),
                "days": days(rng, tour, route),
            }
        )
    return result


def maps(rng: random.Random, variation: Record, first_id: int) -> list[Record]:
    width, height = rng.choice(((1200, 800), (1600, 900), (1024, 768)))
    itinerary_id, variation_id = variation["itinerary_id"], variation["id"]
    kinds = ("Route overview", "Day by day") if rng.random() < 0.5 else ("Route overview",)
    return [
        {
            "id": first_id + offset,
            "itinerary_id": itinerary_id,
            "variation_id": variation_id,
            "caption": f"{kind}: {variation['name']}",
            "image_url": f"https://maps.example.com/itineraries/{itinerary_id}/{variation_id}/"
            f"{offset + 1}.png",
            "width": width,
            "height": height,
        }
        for offset, kind in enumerate(kinds)
    ]


def itineraries(rng: random.Random) -> Records:
    """Itinerary N belongs to tour N; its variations and maps get ids in creation order."""
    result: Records = {"itineraries": [], "itinerary_variations": [], "itinerary_maps": []}
    for number, tour in enumerate(demo.tours(), start=1):
        own = variations(rng, number, tour, len(result["itinerary_variations"]) + 1)
        result["itineraries"].append(
            {
                "id": number,
                "tour_id": number,
                "name": f"{tour.name} itinerary",
                "duration_days": tour.duration_days,
                "variation_ids": [item["id"] for item in own],
            }
        )
        result["itinerary_variations"].extend(own)
        for variation in own:
            result["itinerary_maps"].extend(maps(rng, variation, len(result["itinerary_maps"]) + 1))
    return result


def accommodations(rng: random.Random, count: int = 45) -> list[Record]:
    places = sorted({city for cities in demo.CITIES.values() for city in cities})
    return [
        {
            "id": number,
            "name": rng.choice(STAY_NAMES).format(city=city),
            "city": city,
            "country": country,
            "rating": rng.randint(1, 5),
            "amenities": sorted(rng.sample(AMENITIES, rng.randint(2, 6))),
        }
        for number, (city, country) in enumerate(rng.sample(places, count), start=1)
    ]


def seed() -> Records:
    rng = random.Random(SEED)
    return {"tours": tours(), **itineraries(rng), "accommodations": accommodations(rng)}


SYSTEM = System(
    name="operations",
    collections=(
        "tours",
        "itineraries",
        "itinerary_variations",
        "itinerary_maps",
        "accommodations",
    ),
    indexes=(
        ("itineraries", "tour_id"),
        ("itinerary_variations", "itinerary_id"),
        ("itinerary_maps", "itinerary_id"),
        ("itinerary_maps", "variation_id"),
    ),
    seed=seed,
)
