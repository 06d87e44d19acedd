"""proxy.routing.model: the pure match of a parsed table (as a parametrized table), the routing
key of every form of request target, and the table's immutability."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.routing.model import RouteTable, routing_key

# -- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "resource", "backend"),
    [
        ("GET", "/bookings", "bookings", "drf"),
        ("POST", "/bookings", "bookings", "drf"),
        ("GET", "/bookings/", "bookings", "drf"),
        ("GET", "/bookings/7", "bookings", "drf"),
        ("GET", "/bookings/7/customers", "bookings", "drf"),
        ("PATCH", "/bookings/resource", "bookings", "drf"),
        ("GET", "/bookings?page=2", "bookings", "drf"),
        ("GET", "/bookings/7?x=/customers", "bookings", "drf"),
        ("GET", "/customers/3/bookings", "customers", "legacy"),
        ("GET", "/itineraries", "itineraries", "drf"),
        ("GET", "/itineraries/5/6/departures", "itineraries", "drf"),
        ("POST", "/itineraries", "itineraries", "legacy"),
        ("PUT", "/itineraries/5", "itineraries", "legacy"),
        ("HEAD", "/itineraries/5", "itineraries", "legacy"),
        ("get", "/itineraries/5", "itineraries", "legacy"),
        ("GET", "/tours/1", "other", "legacy"),
        ("GET", "/", "other", "legacy"),
        ("GET", "", "other", "legacy"),
        ("OPTIONS", "*", "other", "legacy"),
        ("GET", "//bookings", "other", "legacy"),
        ("GET", "/book%69ngs/7", "bookings", "drf"),
        ("GET", "/%62ookings", "bookings", "drf"),
        ("GET", "/bookings%2F7", "bookings", "drf"),
        ("GET", "/bookings%2f7/customers", "bookings", "drf"),
        ("GET", "http://example.test/bookings/7", "bookings", "drf"),
        ("GET", "HTTPS://u@example.test:8443/bookings%2F7?x=1", "bookings", "drf"),
        ("GET", "http://example.test/tours/1", "other", "legacy"),
        ("GET", "http://example.test", "other", "legacy"),
        ("GET", "/%2Fbookings/7", "other", "legacy"),
        ("GET", "/./bookings/7", "other", "legacy"),
        ("GET", "/bookings;v=1/7", "other", "legacy"),
        ("GET", "Xbookings/7?a=://", "other", "legacy"),
        ("GET", "/Bookings", "other", "legacy"),
        ("GET", "/bookingsX", "other", "legacy"),
    ],
)
def test_match(table: RouteTable, method: str, path: str, resource: str, backend: str) -> None:
    decision = table.match(method, path)
    assert (decision.resource, decision.backend.name) == (resource, backend)
    assert table.resource_label(path) == resource
    if resource == "other":
        assert decision.route is None
    else:
        assert decision.route is table.routes[resource]


def test_match_returns_prebuilt_decisions(table: RouteTable) -> None:
    assert table.match("GET", "/bookings/1") is table.match("DELETE", "/bookings")
    assert table.match("GET", "/nope") is table.match("GET", "/")


# What gunicorn + Flask and gunicorn + Django resolve each target to (tried on both, and on the
# real legacy gateway in test_routing_key.py): the key is the first segment of that path.
@pytest.mark.parametrize(
    ("target", "key"),
    [
        # origin-form: the path before `?`/`#`, percent-decoded once, split on "/" as it is
        ("/bookings/7?x=1", "bookings"),
        ("/bookings", "bookings"),
        ("/bookings/", "bookings"),
        ("/bookings?x=/tours", "bookings"),
        ("/bookings#/tours", "bookings"),
        ("/bookings?x=%2F", "bookings"),
        ("/", ""),
        ("/?/bookings", ""),
        ("/book%69ngs/7", "bookings"),
        ("/%62ookings", "bookings"),
        ("/bookings%2F7", "bookings"),
        ("/bookings%2f7", "bookings"),
        ("/bookings%252F7", "bookings%2F7"),  # decoded once, like gunicorn
        ("/%2Fbookings/7", ""),  # PATH_INFO //bookings/7: no resource to either gateway (404)
        ("//bookings/7", ""),
        ("///bookings", ""),
        ("/./bookings/7", "."),  # dot segments are not removed (404 on both)
        ("/%2e/bookings/7", "."),
        ("/../bookings/7", ".."),
        ("/tours/../bookings/7", "tours"),
        ("/bookings;v=1/7", "bookings;v=1"),  # nor are ;params (404 on both)
        ("/bookings%3B/7", "bookings;"),
        ("/\\bookings/7", "\\bookings"),  # nor is "\\" a separator (404 on both)
        ("/%5Cbookings/7", "\\bookings"),
        ("/%zz/7", "%zz"),  # not an escape: kept, as unquote does
        ("/%C3%A9t%C3%A9", "\u00e9t\u00e9"),
        ("/BOOKINGS", "BOOKINGS"),
        # absolute-form: the path after the authority, then as above
        ("http://h/bookings/7", "bookings"),
        ("HTTP://H/bookings/7", "bookings"),
        ("https://h:8443/bookings/7?x=1", "bookings"),
        ("ftp://h/bookings/7", "bookings"),  # gunicorn ignores the scheme
        ("http://u:p@h/bookings%2F7", "bookings"),
        ("http://[::1]:80/bookings", "bookings"),
        ("http:///bookings", "bookings"),
        ("http://h//bookings/7", ""),
        ("http://h/%2Fbookings/7", ""),
        ("http://h", ""),
        ("http://h?/bookings", ""),
        ("http://h#/bookings", ""),
        ("http://h%2Fbookings/7", "7"),  # %2F in the authority is no separator
        # asterisk-form: no path at all (OPTIONS * is a 404 on both)
        ("*", ""),
        # anything else: gunicorn reads some of these as a path without a leading "/", which
        # Flask serves (`http:Xbookings/7?a=://` is bookings/7 to legacy) and Django refuses
        ("Xbookings/7?a=://", None),
        ("http:Xbookings/7?a=://", None),
        ("http:/bookings/7", None),
        ("1x://h/bookings", None),
        ("bookings/7", None),
        ("h:443", None),
        ("", None),
    ],
)
def test_routing_key(target: str, key: str | None) -> None:
    assert routing_key(target) == key


def test_match_refuses_a_target_without_a_key(table: RouteTable) -> None:
    decision = table.match("GET", "http:Xbookings/7?a=://")
    assert decision.refused
    assert (decision.resource, decision.backend.name, decision.route) == ("other", "legacy", None)
    assert not table.match("GET", "/nope").refused
    assert not table.match("GET", "/bookings/7").refused


def test_table_is_immutable(table: RouteTable) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.default = "drf"
    with pytest.raises(TypeError):
        table.routes["tours"] = table.routes["bookings"]
    with pytest.raises(TypeError):
        table.routes["itineraries"].methods["POST"] = "drf"
