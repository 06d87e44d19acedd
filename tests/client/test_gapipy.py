"""gapipy, G Adventures' official Python client, against the demo: the judge of "clients never
notice".

The client is used as published (no patch, no adapter, configured with a key and an API root as
its README says) against the legacy gateway, the DRF gateway and the proxy in front of both
(`ROUTED` sends some resources to each). It gets, lists (following every page), counts, filters
on what the demo filters on (paging), asks OPTIONS and creates bookings, and gets the same
objects from all three. Links carry the host the client called, so objects are compared with
each endpoint's base URL taken out.

gapipy itself will not list or count customers (`Customer._is_listable = False`): what it allows
of them (get, options, create) is tested, and that it refuses the rest.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from gapipy import Client
from gapipy.resources import Booking, Customer, Itinerary, Nationality, Tour

from tests.support import API_KEY, World, make_world

pytestmark = [
    pytest.mark.e2e,
    # gapipy warns on every Tour it builds: upstream deprecated its `tours` resource.
    pytest.mark.filterwarnings(
        "ignore:The `tours` resource has been deprecated:DeprecationWarning"
    ),
]

ENDPOINTS = ("legacy", "drf", "proxy")
# Where the proxy sends each resource, so that its answers come from both gateways.
ROUTED = {
    "bookings": "drf",
    "customers": "legacy",
    "departures": "drf",
    "tours": "legacy",
    "itineraries": "drf",
    "itinerary_maps": "legacy",
    "accommodations": "legacy",
}
# gapipy's queries the demo serves, with the source system and collection of their records.
LISTABLE = {
    "bookings": ("reservations", "bookings"),
    "departures": ("reservations", "departures"),
    "tours": ("operations", "tours"),
    "itineraries": ("operations", "itineraries"),
    "accommodations": ("operations", "accommodations"),
}
READABLE = (*LISTABLE, "customers")
WRITABLE = ("bookings", "customers")
UTC_SECOND = "%Y-%m-%dT%H:%M:%SZ"
BOOKING = {
    "customer_id": 7,
    "departure_id": 8,
    "travellers": 2,
    "currency": "CAD",
    "total_amount": "2598.00",
    "contact_email": "gapipy@example.com",
}
# Nationalities of the customers read here (customer 3 is French in the seed).
NATIONALITY_NAMES = {"CA": "Canadian", "FR": "French"}


def routes_text(world: World) -> str:
    lines = [
        "version: 1",
        "backends:",
        f"  legacy: {{url: {world.url('legacy')}}}",
        f"  drf: {{url: {world.url('drf')}}}",
        "default: legacy",
        "resources:",
        *(f"  {resource}: {backend}" for resource, backend in ROUTED.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("gapipy")
    with make_world(base) as started:
        started.start_legacy()
        started.start_drf()
        routes = base / "routes.yaml"
        routes.write_text(routes_text(started))
        started.start_proxy(routes, {"STRANGLER_ACCESS_LOG": "0"})
        yield started


@pytest.fixture(scope="module")
def clients(world: World) -> Iterator[dict[str, Client]]:
    """One gapipy client per endpoint, as its README configures one: a key and an API root."""
    made = {name: Client(application_key=API_KEY, api_root=world.url(name)) for name in ENDPOINTS}
    yield made
    for client in made.values():
        client.requestor.close()


def source(world: World, system: str, path: str) -> Any:
    answer = requests.get(f"{world.url(system)}/{path}", timeout=5)
    assert answer.status_code == 200, path
    return answer.json()


def source_count(world: World, system: str, collection: str, query: str = "") -> int:
    return int(source(world, system, f"{collection}?limit=0{query}")["count"])


def portable(world: World, endpoint: str, data: Any) -> Any:
    """`data` with the endpoint's base URL in its links replaced by one name."""
    return json.loads(json.dumps(data).replace(world.url(endpoint), "http://api"))


def seen(world: World, endpoint: str, obj: Any) -> Any:
    """What a gapipy user sees of an object: its parsed fields (`to_dict()`) and the JSON."""
    return portable(world, endpoint, {"fields": obj.to_dict(), "json": obj._raw_data})


def assert_same_everywhere(views: dict[str, Any]) -> None:
    assert views["drf"] == views["legacy"]
    assert views["proxy"] == views["legacy"]


GETS = [
    ("bookings", 12),
    ("bookings", 10),  # no CRM record
    ("customers", 3),
    ("departures", 5),
    ("tours", 3),
    ("itineraries", 3),
    ("accommodations", 4),
]


@pytest.mark.parametrize(("resource", "pk"), GETS)
def test_get_reads_the_same_object_from_every_endpoint(
    world: World, clients: dict[str, Client], resource: str, pk: int
) -> None:
    objects = {name: getattr(client, resource).get(pk) for name, client in clients.items()}
    assert {obj.id for obj in objects.values()} == {pk}
    assert not any(obj.is_stub for obj in objects.values())
    assert_same_everywhere({name: seen(world, name, obj) for name, obj in objects.items()})


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_fields_parse_as_gapipy_models_them(
    world: World, clients: dict[str, Client], endpoint: str
) -> None:
    client = clients[endpoint]
    stored = source(world, "reservations", "bookings/12")
    booking = client.bookings.get(12)
    assert booking.date_created == datetime.datetime.strptime(stored["date_created"], UTC_SECOND)
    assert booking.to_dict()["date_created"] == stored["date_created"]

    stored = source(world, "reservations", "customers/3")
    customer = client.customers.get(3)
    assert isinstance(customer.nationality, Nationality) and customer.nationality.is_stub
    assert customer.nationality.to_dict() == {
        "id": stored["nationality"],
        "href": f"{world.url(endpoint)}/nationalities/{stored['nationality']}",
        "name": NATIONALITY_NAMES[stored["nationality"]],
    }
    assert repr(customer.nationality) == f"<Nationality: {customer.nationality.name}>"
    assert customer.date_of_birth == datetime.date.fromisoformat(stored["date_of_birth"])

    stored = source(world, "reservations", "departures/5")
    departure = client.departures.get(5)
    assert departure.start_date == datetime.date.fromisoformat(stored["start_date"])
    assert departure.finish_date == datetime.date.fromisoformat(stored["finish_date"])
    assert isinstance(departure.tour, Tour) and departure.tour.id == stored["tour_id"]
    # A stub fetches itself on first use of a field it lacks: the departure's own tour.
    tour = source(world, "operations", f"tours/{stored['tour_id']}")
    assert departure.tour.product_line == tour["product_line"]
    assert not departure.tour.is_stub


@pytest.mark.parametrize("resource", LISTABLE)
def test_all_follows_every_page_and_count_is_the_sources(
    world: World, clients: dict[str, Client], resource: str
) -> None:
    system, collection = LISTABLE[resource]
    total = source_count(world, system, collection)
    assert total > 7 * 3
    listed = {}
    for name, client in clients.items():
        query = getattr(client, resource)
        assert query.count() == total
        assert query.filter(max_per_page=7).count() == total
        # Seven a page: every object is reached only by following `next` links.
        first = requests.get(
            f"{world.url(name)}/{resource}?max_per_page=7",
            headers={"X-Application-Key": API_KEY},
            timeout=5,
        ).json()
        assert (len(first["results"]), first["links"][-1]["rel"]) == (7, "next")
        objects = list(query.filter(max_per_page=7).all())
        assert [obj.id for obj in objects] == list(range(1, total + 1))
        assert all(obj.is_stub for obj in objects)
        listed[name] = [seen(world, name, obj) for obj in objects]
        # The default page size (20), cut by `limit` in the middle of the second page.
        assert [obj.id for obj in query.all(limit=23)] == list(range(1, 24))
    assert_same_everywhere(listed)


@pytest.mark.parametrize("resource", READABLE)
def test_options_name_the_resource_and_its_methods(
    clients: dict[str, Client], resource: str
) -> None:
    methods = ["GET", "HEAD", "OPTIONS"] + (["POST"] if resource in WRITABLE else [])
    answers = {name: getattr(client, resource).options() for name, client in clients.items()}
    assert answers == dict.fromkeys(ENDPOINTS, {"name": resource, "methods": methods})


def test_an_itinerary_variation_is_fetched_by_id_and_variation_id(
    world: World, clients: dict[str, Client]
) -> None:
    vids = source(world, "operations", "itineraries/3")["variation_ids"]
    record = source(world, "operations", f"itinerary_variations/{vids[-1]}")
    views = {}
    for name, client in clients.items():
        stubs = client.itineraries.get(3).variations
        assert all(isinstance(stub, Itinerary) for stub in stubs)
        assert [(stub.id, stub.variation_id, stub.is_stub) for stub in stubs] == [
            (3, vid, True) for vid in vids
        ]
        variation = client.itineraries.get(3, vids[-1])
        assert (variation.id, variation.variation_id, variation.name) == (
            3,
            vids[-1],
            record["name"],
        )
        assert [(day.day, day.summary) for day in variation.days] == [
            (day["day"], day["summary"]) for day in record["days"]
        ]
        # A stub fetches its own variation, not the itinerary numbered like it.
        assert stubs[-1].name == record["name"]
        views[name] = seen(world, name, variation)
    assert_same_everywhere(views)


def test_a_tours_departures_are_a_query_gapipy_follows(
    world: World, clients: dict[str, Client]
) -> None:
    items = source(world, "reservations", "departures?tour_id=2&limit=1000")["items"]
    expected = [item["id"] for item in items]
    assert len(expected) >= 2
    for client in clients.values():
        departures = client.tours.get(2).departures
        assert [departure.id for departure in departures.all()] == expected
        assert [departure.id for departure in departures.filter(max_per_page=1).all()] == expected


def test_create_booking_stores_it_and_answers_alike(
    world: World, clients: dict[str, Client]
) -> None:
    views = {}
    for name, client in clients.items():
        since = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
        booking = client.bookings.create(BOOKING)
        assert isinstance(booking, Booking) and not booking.is_stub
        assert (
            since
            <= booking.date_created
            <= datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        )
        created = booking._raw_data["date_created"]
        stored = source(world, "reservations", f"bookings/{booking.id}")
        assert stored == {"id": booking.id, **BOOKING, "status": "pending", "date_created": created}
        assert client.bookings.get(booking.id)._raw_data == booking._raw_data
        generated = ("id", "href", "date_created")
        views[name] = portable(
            world, name, {k: v for k, v in booking._raw_data.items() if k not in generated}
        )
    assert_same_everywhere(views)


def test_customers_get_options_and_create_but_gapipy_will_not_list_them(
    world: World, clients: dict[str, Client]
) -> None:
    for name, client in clients.items():
        with pytest.raises(ValueError, match="not listable"):
            client.customers.all()
        with pytest.raises(ValueError, match="not listable"):
            client.customers.count()
        body = {
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": f"grace.{name}@example.com",
            "nationality": {"id": "CA"},
        }
        customer = client.customers.create(body)
        assert isinstance(customer, Customer)
        assert (customer.nationality.id, customer.nationality.name) == (
            "CA",
            NATIONALITY_NAMES["CA"],
        )
        stored = source(world, "reservations", f"customers/{customer.id}")
        assert (stored["email"], stored["nationality"]) == (body["email"], "CA")


def proxied(world: World, gateway: str) -> list[str]:
    """The paths `gateway` served for the proxy: those with the X-Request-ID the proxy adds
    (gapipy sends none, so its direct calls are logged with `request_id=-`)."""
    return re.findall(r'"[A-Z]+ (/\S*) HTTP/1\.1" .* request_id=[0-9a-f]', world.log(gateway))


def test_the_proxy_answers_from_both_gateways_as_routed(
    world: World, clients: dict[str, Client]
) -> None:
    for resource in READABLE:
        getattr(clients["proxy"], resource).get(2)
    deadline = time.monotonic() + 5
    while not all(proxied(world, gateway) for gateway in ("legacy", "drf")):
        assert time.monotonic() < deadline, "no proxied request in a gateway's access log"
        time.sleep(0.05)
    served = {gateway: proxied(world, gateway) for gateway in ("legacy", "drf")}
    for resource in READABLE:
        for gateway, paths in served.items():
            mine = [path for path in paths if path.split("/")[1].split("?")[0] == resource]
            assert bool(mine) == (ROUTED[resource] == gateway), (resource, gateway)
