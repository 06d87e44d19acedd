from __future__ import annotations

import json
from typing import Any

import pytest
from django.http import Http404
from django.test import RequestFactory
from rest_framework import exceptions

from drf_app.backends import SourceUnavailable
from drf_app.errors import (
    InvalidXMLBody,
    exception_handler,
    invalid_body,
    not_found,
    server_error,
)
from tests.support import xml_cases


def handled(exc: Exception) -> tuple[int, Any]:
    response = exception_handler(exc, {})
    assert response is not None
    return response.status_code, response.data


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (exceptions.NotAuthenticated(), 401, "Missing or invalid X-Application-Key."),
        (exceptions.AuthenticationFailed(), 401, "Missing or invalid X-Application-Key."),
        (exceptions.NotFound(), 404, "Not found."),
        (Http404(), 404, "Not found."),
        (exceptions.MethodNotAllowed("DELETE"), 405, 'Method "DELETE" not allowed.'),
        (exceptions.ParseError(), 400, "Invalid JSON body."),
        (SourceUnavailable(), 502, "A source system is unavailable."),
    ],
)
def test_drf_exceptions_become_the_envelope(exc: Exception, status: int, message: str) -> None:
    assert handled(exc) == (status, {"http_status_code": status, "message": message, "errors": []})


def test_validation_errors_list_the_first_message_of_each_field_in_order() -> None:
    detail = {"travellers": ["Too many.", "Second."], "currency": ["Bad."]}
    assert handled(exceptions.ValidationError(detail)) == (
        400,
        {
            "http_status_code": 400,
            "message": "Invalid data.",
            "errors": [
                {"field": "travellers", "message": "Too many."},
                {"field": "currency", "message": "Bad."},
            ],
        },
    )


def test_other_exceptions_are_left_to_django() -> None:
    assert exception_handler(ValueError("boom"), {}) is None


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "Missing or invalid X-Application-Key."),
        ({"HTTP_X_APPLICATION_KEY": "wrong"}, 401, "Missing or invalid X-Application-Key."),
        ({"HTTP_X_APPLICATION_KEY": "demo"}, 404, "Not found."),
    ],
)
def test_unmatched_urls_check_the_key_before_answering_404(
    headers: dict[str, str], status: int, message: str
) -> None:
    response = not_found(RequestFactory().get("/nowhere", **headers), Http404())
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "http_status_code": status,
        "message": message,
        "errors": [],
    }


@pytest.mark.parametrize(
    "meta",
    [{"HTTP_ACCEPT": "application/xml"}, {"QUERY_STRING": "format=xml"}],
)
def test_answers_no_view_renders_are_in_the_format_asked_for(meta: dict[str, str]) -> None:
    response = server_error(RequestFactory().get("/bookings", **meta))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    assert response.content == xml_cases.SERVER_ERROR
    missing = not_found(RequestFactory().get("/nowhere", **meta), Http404())
    assert missing.content.startswith(xml_cases.DECLARATION + b"<root><http_status_code>401<")


def test_an_invalid_xml_body_is_told_apart() -> None:
    assert handled(InvalidXMLBody()) == (
        400,
        {"http_status_code": 400, "message": "Invalid XML body.", "errors": []},
    )
    assert isinstance(invalid_body("text/xml; charset=utf-8"), InvalidXMLBody)
    assert not isinstance(invalid_body("text/plain"), InvalidXMLBody)


def test_server_errors_are_the_envelope_without_details() -> None:
    response = server_error(RequestFactory().get("/bookings"))
    assert (response.status_code, json.loads(response.content)) == (
        500,
        {"http_status_code": 500, "message": "Internal server error.", "errors": []},
    )
