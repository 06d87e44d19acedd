"""The API's resources, as data on views (compare legacy's resource dictionaries)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from django.conf import settings

from drf_app.backends import READ_ONLY, READ_WRITE
from drf_app.objects import Reference
from drf_app.serializers import NATIONALITIES, BookingSerializer, CustomerSerializer
from drf_app.views import Nested, ResourceView, Variations, WritableResourceView


class BookingView(WritableResourceView):
    object_backends = ((READ_WRITE, "RESERVATIONS"), (READ_ONLY, "CRM"))
    collection = "bookings"
    links = MappingProxyType({"customer_id": "customers", "departure_id": "departures"})
    serializer_class = BookingSerializer

    def prepare_create(self, data: dict[str, Any]) -> dict[str, Any]:
        # A UTC date-time to the second, the format gapipy reads Booking.date_created in.
        now = settings.DEMO_NOW or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"status": "pending", **data, "date_created": now}


class CustomerView(WritableResourceView):
    object_backends = ((READ_WRITE, "RESERVATIONS"), (READ_ONLY, "CRM"))
    collection = "customers"
    references = MappingProxyType({"nationality": Reference("nationalities", NATIONALITIES)})
    serializer_class = CustomerSerializer


class DepartureView(ResourceView):
    object_backends = ((READ_ONLY, "RESERVATIONS"),)
    collection = "departures"
    links = MappingProxyType({"tour_id": "tours"})


class TourView(ResourceView):
    object_backends = ((READ_ONLY, "OPERATIONS"),)
    collection = "tours"
    nested = (Nested("departures", "tour_id"),)


class ItineraryView(ResourceView):
    object_backends = ((READ_ONLY, "OPERATIONS"),)
    collection = "itineraries"
    links = MappingProxyType({"tour_id": "tours"})
    variations = Variations("OPERATIONS", "itinerary_variations", "itinerary_id")
    nested = (Nested("itinerary_maps", "itinerary_id", variation_field="variation_id"),)


class ItineraryMapView(ResourceView):
    object_backends = ((READ_ONLY, "OPERATIONS"),)
    collection = "itinerary_maps"
    links = MappingProxyType({"itinerary_id": "itineraries"})


class AccommodationView(ResourceView):
    object_backends = ((READ_ONLY, "OPERATIONS"),)
    collection = "accommodations"


RESOURCES: tuple[tuple[str, type[ResourceView]], ...] = (
    ("bookings", BookingView),
    ("customers", CustomerView),
    ("departures", DepartureView),
    ("tours", TourView),
    ("itineraries", ItineraryView),
    ("itinerary_maps", ItineraryMapView),
    ("accommodations", AccommodationView),
)
