"""JSON first, XML when asked (drf_app.negotiation), on legacy's table (tests/support/xml_cases)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from drf_app.negotiation import (
    JSONFirst,
    accept_decides,
    format_param,
    is_xml,
    preferred_format,
    response_format,
    unknown_format,
)
from drf_app.parsers import XMLParser
from drf_app.renderers import XMLRenderer
from tests.support.xml_cases import ACCEPTS, CONTENT_TYPES

RENDERERS = [JSONRenderer(), XMLRenderer()]
PARSERS = [JSONParser(), XMLParser()]


def request(path: str = "/tours", **meta: Any) -> Request:
    return Request(RequestFactory().get(path, **meta), parsers=PARSERS)


@pytest.mark.parametrize(("accept", "expected"), ACCEPTS)
def test_preferred_format(accept: str | None, expected: str) -> None:
    assert preferred_format(accept) == expected


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("?format=xml", None, "xml"),
        ("?format=json", "application/xml", "json"),
        ("?format=", "application/xml", "xml"),
        ("", "application/xml", "xml"),
        ("?format=csv", "application/xml", "xml"),
        ("?format=XML", None, "json"),
        ("?format=xml&format=json", None, "xml"),
    ],
)
def test_format_parameter_beats_accept(query: str, accept: str | None, expected: str) -> None:
    meta = {} if accept is None else {"HTTP_ACCEPT": accept}
    drf_request = request("/tours" + query, **meta)
    renderer, media_type = JSONFirst().select_renderer(drf_request, RENDERERS)
    assert renderer.format == expected
    assert media_type == renderer.media_type
    accepted = drf_request.headers.get("Accept")
    assert response_format(format_param(drf_request.query_params), accepted) == expected


@pytest.mark.parametrize(
    ("query", "unknown"),
    [
        ("", False),
        ("?format=", False),
        ("?format=xml", False),
        ("?format=csv", True),
        ("?format=csv&format=xml", True),
        ("?format=xml&format=csv", False),
    ],
)
def test_unknown_format(query: str, unknown: bool) -> None:
    assert unknown_format(format_param(request("/tours" + query).query_params)) is unknown


@pytest.mark.parametrize(
    ("query", "decides"),
    [
        ("", True),
        ("?format=", True),
        ("?format=csv", True),
        ("?format=XML", True),
        ("?format=json", False),
        ("?format=xml", False),
        ("?format=xml&format=csv", False),
    ],
)
def test_accept_decides_unless_the_query_names_a_format(query: str, decides: bool) -> None:
    assert accept_decides(format_param(request("/tours" + query).query_params)) is decides


@pytest.mark.parametrize(("content_type", "xml"), CONTENT_TYPES)
def test_parser_by_content_type(content_type: str | None, xml: bool) -> None:
    assert is_xml(content_type) is xml
    meta = {} if content_type is None else {"CONTENT_TYPE": content_type}
    parser = JSONFirst().select_parser(request(**meta), PARSERS)
    assert isinstance(parser, XMLParser if xml else JSONParser)
