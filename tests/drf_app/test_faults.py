"""drf_app.faults: the STRANGLER_DRF_FAULTS test / game-day switch."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.urls import Resolver404, URLResolver
from django.urls.resolvers import RegexPattern

from drf_app.faults import fault_patterns
from drf_app.resources import RESOURCES
from drf_app.settings import parse_faults

NAMES = [prefix for prefix, _ in RESOURCES]


def test_parse_faults() -> None:
    assert parse_faults("") == {}
    assert parse_faults(" bookings=500 , tours=503,") == {"bookings": 500, "tours": 503}


@pytest.mark.parametrize("raw", ["bookings", "bookings=", "=500", "bookings=abc", "tours=302"])
def test_bad_faults_stop_the_start(raw: str) -> None:
    with pytest.raises(ValueError, match="STRANGLER_DRF_FAULTS"):
        parse_faults(raw)


def test_unknown_resource_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="bookingz"):
        fault_patterns({"bookingz": 500}, NAMES)


def test_no_faults_no_patterns() -> None:
    assert fault_patterns({}, NAMES) == []


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("bookings", 500, "Internal server error."),
        ("bookings/7/customers", 500, "Internal server error."),
        ("tours/", 503, "Service Unavailable."),
    ],
)
def test_a_faulty_resource_answers_its_status_with_the_envelope(
    path: str, status: int, message: str
) -> None:
    patterns = fault_patterns({"bookings": 500, "tours": 503}, NAMES)
    resolver = URLResolver(RegexPattern(r"^/"), patterns)
    match = resolver.resolve(f"/{path}")
    response = match.func(RequestFactory().get(f"/{path}"), *match.args, **match.kwargs)
    assert response.status_code == status
    assert json.loads(response.content) == {
        "http_status_code": status, "message": message, "errors": []
    }  # fmt: skip


@pytest.mark.parametrize("path", ["/customers/1", "/bookingsx", "/itineraries/1/bookings"])
def test_other_resources_are_untouched(path: str) -> None:
    resolver = URLResolver(RegexPattern(r"^/"), fault_patterns({"bookings": 500}, NAMES))
    with pytest.raises(Resolver404):
        resolver.resolve(path)
