"""The operations seed: tours, itineraries with 2-3 variations, maps for every variation."""

from __future__ import annotations

from collections import Counter

from source_systems import operations


def test_seed_is_deterministic() -> None:
    assert operations.seed() == operations.seed()


def test_counts() -> None:
    counts = {name: len(items) for name, items in operations.seed().items()}
    assert counts == {
        "tours": 50,
        "itineraries": 50,
        "itinerary_variations": 125,
        "itinerary_maps": 185,
        "accommodations": 45,
    }


def test_itinerary_n_belongs_to_tour_n_and_lists_its_variations() -> None:
    data = operations.seed()
    owner = {item["id"]: item["itinerary_id"] for item in data["itinerary_variations"]}
    tours = {item["id"]: item for item in data["tours"]}
    for itinerary in data["itineraries"]:
        assert itinerary["tour_id"] == itinerary["id"]
        assert itinerary["duration_days"] == tours[itinerary["id"]]["duration_days"]
        assert 2 <= len(itinerary["variation_ids"]) <= 3
        assert all(owner[vid] == itinerary["id"] for vid in itinerary["variation_ids"])
    listed = [vid for item in data["itineraries"] for vid in item["variation_ids"]]
    assert sorted(listed) == sorted(owner)


def test_variations_have_one_day_entry_per_tour_day() -> None:
    data = operations.seed()
    duration = {item["id"]: item["duration_days"] for item in data["itineraries"]}
    for variation in data["itinerary_variations"]:
        days = variation["days"]
        assert [day["day"] for day in days] == list(
            range(1, duration[variation["itinerary_id"]] + 1)
        )
        assert days[0]["summary"].startswith("Arrive in ")


def test_every_variation_has_a_map_of_its_own_itinerary() -> None:
    data = operations.seed()
    owner = {item["id"]: item["itinerary_id"] for item in data["itinerary_variations"]}
    per_variation = Counter(item["variation_id"] for item in data["itinerary_maps"])
    assert set(per_variation) == set(owner)
    for item in data["itinerary_maps"]:
        assert owner[item["variation_id"]] == item["itinerary_id"]
        assert set(item) == {
            "id",
            "itinerary_id",
            "variation_id",
            "caption",
            "image_url",
            "width",
            "height",
        }


def test_accommodations_are_rated_one_to_five() -> None:
    for item in operations.seed()["accommodations"]:
        assert 1 <= item["rating"] <= 5
        assert item["amenities"] and all(type(name) is str for name in item["amenities"])
