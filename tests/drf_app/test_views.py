"""Views against fake source systems on loopback, in-process through the router's URLs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.test import Client, RequestFactory, override_settings
from django.urls import URLResolver, get_resolver
from django.utils.cache import patch_vary_headers

from drf_app.backends import Backend, SourceSystems
from drf_app.urls import build_router
from tests.drf_app.fake_source import FakeSource, serve

KEY = {"HTTP_X_APPLICATION_KEY": "demo", "HTTP_HOST": "api.test"}


class World:
    def __init__(self, reservations: FakeSource, crm: FakeSource) -> None:
        self.reservations, self.crm = reservations, crm
        sources = SourceSystems(
            {"RESERVATIONS": Backend(reservations.url, 2), "CRM": Backend(crm.url, 2)}
        )
        self.resolver = URLResolver(get_resolver().pattern, build_router(sources).urls)

    def respond(self, method: str, path: str, body: Any = None) -> Any:
        factory = RequestFactory()
        data = "" if body is None else json.dumps(body)
        request = factory.generic(method, path, data, content_type="application/json", **KEY)
        match = self.resolver.resolve(path.partition("?")[0])
        response = match.func(request, *match.args, **match.kwargs)
        response.render()
        return response

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.respond(method, path, body)
        return response.status_code, json.loads(response.content) if response.content else None


@pytest.fixture
def world() -> Iterator[World]:
    reservations = FakeSource(
        {
            "bookings": {
                1: {"id": 1, "customer_id": 5, "departure_id": 6, "contact_email": "res@x.test"},
                2: {"id": 2, "customer_id": 5, "departure_id": 7, "contact_email": "res2@x.test"},
            }
        }
    )
    crm = FakeSource({"bookings": {1: {"id": 1, "contact_email": "crm@x.test", "notes": "n"}}})
    with serve(reservations), serve(crm):
        yield World(reservations, crm)


def test_reads_merge_backends_in_declared_order(world: World) -> None:
    assert world.call("GET", "/bookings/1") == (
        200,
        {
            "id": 1,
            "contact_email": "crm@x.test",
            "notes": "n",
            "customer": {"id": 5, "href": "http://api.test/customers/5"},
            "departure": {"id": 6, "href": "http://api.test/departures/6"},
            "href": "http://api.test/bookings/1",
        },
    )
    assert world.call("GET", "/bookings/2")[1]["contact_email"] == "res2@x.test"


def test_a_page_asks_each_later_backend_once_for_all_its_ids(world: World) -> None:
    status, page = world.call("GET", "/bookings?max_per_page=5")
    assert status == 200
    assert [item["contact_email"] for item in page["results"]] == ["crm@x.test", "res2@x.test"]
    assert world.crm.seen == [("GET", "/bookings", {"offset": "0", "limit": "2", "ids": "1,2"})]


def test_writes_go_only_to_read_write_backends(world: World) -> None:
    body = {
        "customer_id": 5,
        "departure_id": 6,
        "travellers": 2,
        "currency": "EUR",
        "total_amount": 10,
    }
    status, created = world.call("POST", "/bookings", body)
    assert status == 201
    stored = world.reservations.collections["bookings"][3]
    assert stored["total_amount"] == "10.00" and stored["status"] == "pending"
    assert created["href"] == "http://api.test/bookings/3"
    status, changed = world.call("PATCH", "/bookings/1", {"travellers": 4})
    assert (status, changed["travellers"], changed["contact_email"]) == (200, 4, "crm@x.test")
    assert [method for method, _, _ in world.crm.seen] == ["GET", "GET"]
    assert world.crm.collections["bookings"] == {
        1: {"id": 1, "contact_email": "crm@x.test", "notes": "n"}
    }


def test_a_missing_object_is_404_before_its_body_is_checked(world: World) -> None:
    assert world.call("PUT", "/bookings/9", {"travellers": 99})[0] == 404
    assert world.call("PUT", "/bookings/1", {"travellers": 99})[0] == 400


def test_garbage_from_a_later_backend_is_502(world: World) -> None:
    world.crm.garbage = (200, b"not json")
    assert world.call("GET", "/bookings/1") == (
        502,
        {"http_status_code": 502, "message": "A source system is unavailable.", "errors": []},
    )


BOOKING = {
    "customer_id": 5,
    "departure_id": 6,
    "travellers": 2,
    "currency": "EUR",
    "total_amount": 1,
}


def test_put_merges_into_the_stored_record(world: World) -> None:
    """PUT validates every required field but keeps what it does not send (the source's
    PATCH): here contact_email, in the API date_created and an omitted status."""
    assert world.call("PUT", "/bookings/2", BOOKING)[0] == 200
    assert world.reservations.seen[-1][:2] == ("PATCH", "/bookings/2")
    assert world.reservations.collections["bookings"][2] == {
        "id": 2,
        **BOOKING,
        "total_amount": "1.00",
        "contact_email": "res2@x.test",
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/bookings/1", 200, None),
        ("GET", "/bookings?page=x", 400, None),
        ("PUT", "/bookings/9", 404, None),
        ("OPTIONS", "/bookings", 200, "GET, HEAD, OPTIONS, POST"),
        ("OPTIONS", "/bookings/1", 200, "GET, HEAD, OPTIONS, PUT, PATCH"),
        ("DELETE", "/bookings/1", 405, "GET, HEAD, OPTIONS, PUT, PATCH"),
        ("TRACE", "/bookings", 405, "GET, HEAD, OPTIONS, POST"),
    ],
)
def test_allow_only_on_options_and_405_in_legacy_order(
    world: World, method: str, path: str, status: int, allow: str | None
) -> None:
    response = world.respond(method, path, {})
    assert (response.status_code, response.get("Allow")) == (status, allow)


def test_options_names_the_resource_and_its_methods(world: World) -> None:
    response = world.respond("OPTIONS", "/bookings/1")
    methods = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH"]
    assert json.loads(response.content) == {"name": "bookings", "methods": methods}
    assert (response.get("Content-Type"), response.get("Allow")) == (
        "application/json",
        ", ".join(methods),
    )


@pytest.mark.parametrize(
    ("own", "vary"),
    [
        ("Origin", "Origin, Accept"),
        ("Cookie, origin", "Cookie, origin, Accept"),
        ("accept", "accept"),
        ("*", "*"),
    ],
)
def test_vary_accept_joins_a_vary_the_answer_already_has(world: World, own: str, vary: str) -> None:
    """The view's answer keeps its own Vary and gains Accept once (`*` already covers it)."""
    match = world.resolver.resolve("/bookings/1")

    class OwnVary(match.func.cls):
        def retrieve(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            response = super().retrieve(request, *args, **kwargs)
            response["Vary"] = own
            return response

    view = OwnVary.as_view(match.func.actions, **match.func.initkwargs)
    response = view(RequestFactory().get("/bookings/1", **KEY), *match.args, **match.kwargs)
    assert (response.status_code, response["Vary"]) == (200, vary)


def vary_on_origin(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Any:
    """A middleware varying every answer on Origin, as a CORS one does."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        patch_vary_headers(response, ["Origin"])
        return response

    return middleware


@pytest.mark.parametrize("path", ["/nowhere", "/tours?format=csv", "/tours?page=x"])
def test_vary_accept_is_kept_when_a_middleware_varies_the_answer_too(path: str) -> None:
    """handler404's and views' answers alike: `Accept, Origin`, as on legacy with a hook."""
    middleware = [*settings.MIDDLEWARE, f"{__name__}.vary_on_origin"]
    with override_settings(MIDDLEWARE=middleware):
        response = Client().get(path, HTTP_X_APPLICATION_KEY="demo")
    assert response.status_code in (400, 404)
    assert response["Vary"] == "Accept, Origin"
