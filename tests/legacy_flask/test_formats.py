"""JSON or XML: the choice, XML written and read (legacy_flask.formats), on the shared table
of tests/support/xml_cases.py that drf_app's renderer, parser and negotiation are held to."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Response

from legacy_flask import create_app, formats
from tests.support import xml_cases
from tests.support.xml_cases import (
    ACCEPTS,
    BAD_NAMES,
    BODIES,
    CONTENT_TYPES,
    DECLARATION,
    DOCUMENTS,
    billion_laughs,
)

KEY = {"X-Application-Key": "demo"}


@pytest.mark.parametrize(("accept", "expected"), ACCEPTS)
def test_preferred_format(accept: str | None, expected: str) -> None:
    assert formats.preferred_format(accept) == expected


@pytest.mark.parametrize(
    ("param", "accept", "expected"),
    [
        ("xml", None, "xml"),
        ("json", "application/xml", "json"),
        ("", "application/xml", "xml"),
        (None, "application/xml", "xml"),
        ("csv", "application/xml", "xml"),
        ("XML", None, "json"),
    ],
)
def test_format_parameter_beats_accept(
    param: str | None, accept: str | None, expected: str
) -> None:
    assert formats.response_format(param, accept) == expected


@pytest.mark.parametrize(
    ("param", "unknown"),
    [(None, False), ("", False), ("json", False), ("xml", False), ("csv", True), ("XML", True)],
)
def test_unknown_format(param: str | None, unknown: bool) -> None:
    assert formats.unknown_format(param) is unknown


@pytest.mark.parametrize(
    ("param", "decides"),
    [(None, True), ("", True), ("csv", True), ("XML", True), ("json", False), ("xml", False)],
)
def test_accept_decides_unless_the_query_names_a_format(param: str | None, decides: bool) -> None:
    assert formats.accept_decides(param) is decides


@pytest.mark.parametrize(("content_type", "xml"), CONTENT_TYPES)
def test_is_xml(content_type: str | None, xml: bool) -> None:
    assert formats.is_xml(content_type) is xml


@pytest.mark.parametrize(("data", "document"), DOCUMENTS)
def test_to_xml(data: Any, document: bytes) -> None:
    assert formats.to_xml(data) == DECLARATION + document


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_key_that_is_no_element_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an XML element name"):
        formats.to_xml({name: 1})


@pytest.mark.parametrize(("body", "expected"), BODIES)
def test_from_xml(body: bytes, expected: dict[str, Any] | None) -> None:
    assert formats.from_xml(body) == expected


def test_an_entity_bomb_is_refused_at_once() -> None:
    started = time.monotonic()
    assert formats.from_xml(billion_laughs()) is None
    assert time.monotonic() - started < 0.1


def test_answers_and_errors_in_the_format_asked_for() -> None:
    app = create_app({"API_KEYS": frozenset({"demo"})})
    client = app.test_client()
    try:
        answer = client.get("/nowhere", headers={**KEY, "Accept": "text/xml"})
        assert (answer.status_code, answer.content_type) == (404, formats.XML_CONTENT_TYPE)
        assert answer.data == DECLARATION + (
            b"<root><http_status_code>404</http_status_code><message>Not found.</message>"
            b"<errors></errors></root>"
        )
        unauthorized = client.get("/tours?format=xml")
        assert unauthorized.status_code == 401
        assert unauthorized.data.startswith(DECLARATION + b"<root><http_status_code>401<")
        assert client.get("/tours?format=csv", headers=KEY).json == {
            "http_status_code": 404,
            "message": "Not found.",
            "errors": [],
        }
        assert client.get("/tours?format=csv").status_code == 401
    finally:
        app.extensions["legacy_flask.sources"].close()


def test_an_unexpected_failure_is_a_500_in_the_format_asked_for() -> None:
    app = create_app({"API_KEYS": frozenset({"demo"})})

    def boom() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/boom", view_func=boom)
    try:
        answer = app.test_client().get("/boom?format=xml", headers=KEY)
        assert (answer.status_code, answer.content_type) == (500, formats.XML_CONTENT_TYPE)
        assert answer.data == xml_cases.SERVER_ERROR
    finally:
        app.extensions["legacy_flask.sources"].close()


def test_an_xml_body_that_holds_no_object_is_a_400_in_its_own_words() -> None:
    app = create_app({"API_KEYS": frozenset({"demo"}), "RESERVATIONS_URL": "http://127.0.0.1:9"})
    client = app.test_client()
    try:
        headers = {**KEY, "Content-Type": "application/xml", "Accept": "application/xml"}
        answer = client.post("/bookings", data=b"<!DOCTYPE r><r/>", headers=headers)
        assert answer.status_code == 400
        assert answer.data == DECLARATION + (
            b"<root><http_status_code>400</http_status_code><message>Invalid XML body.</message>"
            b"<errors></errors></root>"
        )
    finally:
        app.extensions["legacy_flask.sources"].close()


@pytest.mark.parametrize("path", ["/nowhere", "/tours?format=csv", "/tours?page=x"])
def test_vary_accept_is_kept_when_another_layer_varies_the_answer_too(path: str) -> None:
    """A later hook adding its own Vary (as a CORS extension adds Origin) merges with Accept,
    as a Django middleware does on the DRF gateway: `Accept, Origin` on both."""
    app = create_app({"API_KEYS": frozenset({"demo"})})

    def vary_on_origin(response: Response) -> Response:
        response.vary.add("Origin")
        return response

    app.after_request(vary_on_origin)
    try:
        answer = app.test_client().get(path, headers=KEY)
        assert answer.status_code in (400, 404)
        assert answer.headers.getlist("Vary") == ["Accept, Origin"]
    finally:
        app.extensions["legacy_flask.sources"].close()
