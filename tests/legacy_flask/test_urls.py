"""URL shapes, lax as the legacy gateway is: a table of paths, no sockets."""

import pytest

from legacy_flask.urls import READ, WRITE_COLLECTION, WRITE_OBJECT, Route, resolve, wsgi_path


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/bookings", Route("collection", "bookings", WRITE_COLLECTION)),
        ("GET", "/bookings/", Route("collection", "bookings", WRITE_COLLECTION)),
        ("POST", "/bookings/resource", Route("collection", "bookings", WRITE_COLLECTION)),
        ("POST", "/bookings/resource/", Route("collection", "bookings", WRITE_COLLECTION)),
        ("POST", "/tours/resource", Route("collection", "tours", READ)),
        ("GET", "/tours", Route("collection", "tours", READ)),
        ("PUT", "/customers/12", Route("object", "customers", WRITE_OBJECT, 12)),
        ("GET", "/departures/3/", Route("object", "departures", READ, 3)),
        ("GET", "/tours/1/departures", Route("nested", "tours", READ, 1, child="departures")),
        (
            "GET",
            "/itineraries/1/itinerary_maps/",
            Route("nested", "itineraries", READ, 1, child="itinerary_maps"),
        ),
        ("GET", "/itineraries/1/2", Route("variation", "itineraries", READ, 1, 2)),
        (
            "GET",
            "/itineraries/1/2/itinerary_maps",
            Route("variation_nested", "itineraries", READ, 1, 2, "itinerary_maps"),
        ),
    ],
)
def test_resolves(method, path, route):
    assert resolve(method, path) == route


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/bookings/resource"),
        ("PUT", "/bookings/resource"),
        ("GET", "/bookings/0"),
        ("GET", "/bookings/-1"),
        ("GET", "/bookings/abc"),
        ("GET", "/bookings/1.0"),
        ("GET", "/bookings//1"),
        ("GET", "/bookings/1//"),
        ("GET", "/bookings/1/departures"),
        ("GET", "/bookings/1/2"),
        ("GET", "/tours/1/2"),
        ("GET", "/tours/1/itinerary_maps"),
        ("GET", "/itineraries/1/0"),
        ("GET", "/itineraries/1/2/departures"),
        ("GET", "/itineraries/1/itinerary_maps/extra"),
        ("GET", "/itineraries/1/2/itinerary_maps/1"),
        ("GET", "/tours/1/departures/1"),
    ],
)
def test_not_found(method, path):
    assert resolve(method, path) is None


@pytest.mark.parametrize(
    ("path_info", "path"),
    [
        ("/bookings", "/bookings"),
        ("//bookings", "//bookings"),
        ("", "/"),
        ("/caf\u00c3\u00a9", "/caf\u00e9"),
    ],
)
def test_wsgi_path_keeps_what_the_client_sent(path_info, path):
    assert wsgi_path({"PATH_INFO": path_info}) == path


def test_a_leading_double_slash_is_no_resource():
    assert resolve("GET", "//bookings") is None
