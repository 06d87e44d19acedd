from __future__ import annotations

import pytest
from django.urls import Resolver404, resolve

from drf_app.resources import ItineraryMapView, ItineraryView, TourView
from drf_app.routers import GatewayRouter

ID = "0*[1-9][0-9]*"


def patterns(router: GatewayRouter) -> list[tuple[str, str]]:
    return [(str(url.pattern), str(url.name)) for url in router.urls]


def test_one_register_call_serves_every_shape_of_a_resource_with_variations() -> None:
    router = GatewayRouter()
    router.register("itineraries", ItineraryView, basename="itineraries")
    router.register("itinerary_maps", ItineraryMapView, basename="itinerary_maps")
    assert patterns(router) == [
        ("^itineraries/?$", "itineraries-list"),
        (f"^itineraries/(?P<pk>{ID})(?:/(?P<variation_id>{ID}))?/?$", "itineraries-detail"),
        ("^itinerary_maps/?$", "itinerary_maps-list"),
        (f"^itinerary_maps/(?P<pk>{ID})/?$", "itinerary_maps-detail"),
        (f"^itineraries/(?P<parent_pk>{ID})/itinerary_maps/?$", "itineraries-itinerary_maps-list"),
        (
            f"^itineraries/(?P<parent_pk>{ID})/(?P<parent_variation_id>{ID})/itinerary_maps/?$",
            "itineraries-variation-itinerary_maps-list",
        ),
    ]


def test_views_bound_by_the_router_receive_its_source_systems() -> None:
    marker = object()
    router = GatewayRouter(marker)  # type: ignore[arg-type]
    router.register("tours", TourView, basename="tours")
    router.register("departures", ItineraryMapView, basename="departures")
    assert {url.callback.initkwargs["sources"] is marker for url in router.urls} == {True}


SHAPES = [
    ("/bookings", "BookingView", "list", {}),
    ("/bookings/", "BookingView", "list", {}),
    ("/bookings/12", "BookingView", "retrieve", {"pk": "12"}),
    ("/bookings/12/", "BookingView", "retrieve", {"pk": "12"}),
    ("/itineraries/2222", "ItineraryView", "retrieve", {"pk": "2222"}),
    ("/itineraries/2222/3333", "ItineraryView", "retrieve", {"pk": "2222", "variation_id": "3333"}),
    (
        "/itineraries/2222/3333/",
        "ItineraryView",
        "retrieve",
        {"pk": "2222", "variation_id": "3333"},
    ),
    ("/itineraries/2222/itinerary_maps", "ItineraryMapView", "list", {"parent_pk": "2222"}),
    (
        "/itineraries/2222/3333/itinerary_maps",
        "ItineraryMapView",
        "list",
        {"parent_pk": "2222", "parent_variation_id": "3333"},
    ),
    ("/tours/5/departures/", "DepartureView", "list", {"parent_pk": "5"}),
]


@pytest.mark.parametrize(("path", "view", "action", "kwargs"), SHAPES)
def test_each_shape_resolves_to_its_view_and_kwargs(
    path: str, view: str, action: str, kwargs: dict[str, str]
) -> None:
    match = resolve(path)
    assert match.func.cls.__name__ == view
    assert match.func.actions["get"] == action
    assert match.kwargs == kwargs


def test_nested_lists_know_their_parent_and_filter_fields() -> None:
    nested_in = resolve("/itineraries/1/2/itinerary_maps").func.initkwargs["nested_in"]
    assert (nested_in.parent, nested_in.field, nested_in.variation_field) == (
        ItineraryView,
        "itinerary_id",
        "variation_id",
    )


def test_writes_are_bound_only_on_writable_resources() -> None:
    assert resolve("/bookings").func.actions == {"get": "list", "post": "create"}
    assert resolve("/bookings/1").func.actions == {
        "get": "retrieve",
        "put": "update",
        "patch": "partial_update",
    }
    assert resolve("/tours").func.actions == {"get": "list"}
    assert resolve("/tours/1").func.actions == {"get": "retrieve"}


@pytest.mark.parametrize(
    "path",
    [
        "/bookings/resource",
        "/bookings/0",
        "/bookings/-1",
        "/bookings/abc",
        "/bookings/1/2",
        "/bookings//",
        "/bookings/1//",
        "/tours/1/itinerary_maps",
        "/tours/1/2/departures",
        "/itineraries/1/0",
        "/itineraries/1/2/3",
        "/itineraries/1/itinerary_maps/2",
        "/unknown",
        "/",
    ],
)
def test_other_shapes_do_not_resolve(path: str) -> None:
    with pytest.raises(Resolver404):
        resolve(path)
