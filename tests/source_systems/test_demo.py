"""The shared demo world: stable, distinct, and independent of the clock."""

from __future__ import annotations

from source_systems import demo


def test_people_are_stable() -> None:
    assert demo.people() == demo.people()
    assert demo.people()[0] == demo.Person(
        "Emma", "Dubois", "emma.dubois1@mail.example.com", "1965-03-22", "IT"
    )
    assert len({person.email for person in demo.people()}) == 100


def test_tours_have_distinct_names_and_room_for_their_cities() -> None:
    tours = demo.tours()
    assert len(tours) == 50
    assert len({tour.name for tour in tours}) == 50
    assert tours[0].name == "Australia Adventure"
    for tour in tours:
        assert 4 <= tour.duration_days <= 21
        assert tour.duration_days >= len(tour.cities) + 2
        assert all(country in demo.COUNTRIES for _, country in tour.cities)


def test_email_local_keeps_ascii_letters_and_the_dot() -> None:
    assert demo.email_local("Zoë", "O'Brien") == "zoe.obrien"
    assert demo.email_local("Jonas", "Müller") == "jonas.muller"
