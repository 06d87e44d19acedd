"""The minimal JSON Schema validator and the response checker of tests/contract.py."""

import pytest

from tests.support.contract import (
    ContractError,
    assert_conforms,
    assert_xml_conforms,
    check_response,
    check_xml_response,
    load_spec,
    match_path,
    validate,
)
from tests.support.xml_cases import DECLARATION, OPENAPI_EXAMPLE

SPEC = {
    "components": {
        "schemas": {
            "Link": {
                "type": "object",
                "required": ["id", "href"],
                "properties": {"id": {"type": "integer"}, "href": {"type": "string"}},
                "additionalProperties": False,
            },
            "MaybeLink": {"$ref": "#/components/schemas/Link", "nullable": True},
        }
    }
}
LINK = {"$ref": "#/components/schemas/Link"}


@pytest.mark.parametrize(
    ("schema", "instance", "errors"),
    [
        ({"type": "integer"}, 3, []),
        ({"type": "integer"}, True, ["$: expected integer, got bool True"]),
        ({"type": "integer"}, 1.5, ["$: expected integer, got float 1.5"]),
        ({"type": "number"}, 1.5, []),
        ({"type": "number"}, 2, []),
        ({"type": "boolean"}, 0, ["$: expected boolean, got int 0"]),
        ({"type": "string"}, None, ["$: expected string, got NoneType None"]),
        ({"type": "string", "nullable": True}, None, []),
        ({"type": ["string", "null"]}, None, []),
        (
            {"type": "array", "items": {"type": "string"}},
            ["a", 1],
            ["$[1]: expected string, got int 1"],
        ),
        ({"enum": ["a", "b"]}, "c", ["$: 'c' is not one of ['a', 'b']"]),
        ({"type": "string", "enum": ["a"]}, "a", []),
        (LINK, {"id": 1, "href": "h"}, []),
        (LINK, {"id": 1}, ["$: missing 'href'"]),
        (LINK, {"id": 1, "href": "h", "x": 0}, ["$: unexpected property 'x'"]),
        (LINK, None, ["$: expected object, got NoneType None"]),
        ({"$ref": "#/components/schemas/MaybeLink"}, None, []),
        (
            {"$ref": "#/components/schemas/MaybeLink"},
            {"id": "1", "href": "h"},
            ["$.id: expected integer, got str '1'"],
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            {"a": 1, "b": "2"},
            ["$.b: expected integer, got str '2'"],
        ),
        (
            {"type": "object", "properties": {"l": LINK}},
            {"l": {"id": 1, "href": 2}},
            ["$.l.href: expected string, got int 2"],
        ),
        ({"type": "object"}, {"anything": [1]}, []),
        ({}, object(), []),
    ],
)
def test_validate(schema, instance, errors):
    assert validate(SPEC, schema, instance) == errors


def test_unknown_type_is_a_spec_error():
    with pytest.raises(ValueError):
        validate(SPEC, {"type": "date"}, "x")


def test_remote_refs_are_refused():
    with pytest.raises(ValueError):
        validate(SPEC, {"$ref": "other.yaml#/X"}, 1)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/bookings", "/bookings"),
        ("/bookings/", "/bookings"),
        ("/bookings?page=2", "/bookings"),
        ("/bookings/12", "/bookings/{id}"),
        ("/bookings/0", None),
        ("/bookings/abc", None),
        ("/itineraries/1/itinerary_maps", "/itineraries/{id}/itinerary_maps"),
        ("/itineraries/1/2", "/itineraries/{id}/{variation_id}"),
        ("/itineraries/1/2/itinerary_maps", "/itineraries/{id}/{variation_id}/itinerary_maps"),
        ("/tours/1/departures", "/tours/{id}/departures"),
        ("/tours/1/2", None),
        ("/nope", None),
    ],
)
def test_match_path(path, template):
    assert match_path(load_spec(), path) == template


NOT_FOUND = {"http_status_code": 404, "message": "Not found.", "errors": []}
LINK_BODY = {"id": 1, "href": "http://h/tours/1"}
TOUR = {
    "id": 1,
    "href": "http://h/tours/1",
    "name": "n",
    "duration_days": 3,
    "region": "r",
    "product_line": "p",
    "departures": {"href": "http://h/tours/1/departures"},
}


def test_documented_answers_conform():
    spec = load_spec()
    assert check_response(spec, "GET", "/tours/1", 200, TOUR) == []
    assert check_response(spec, "GET", "/tours/1", 404, NOT_FOUND) == []
    assert check_response(spec, "GET", "/nope", 404, NOT_FOUND) == []
    method_error = {"http_status_code": 405, "message": 'Method "POST" not allowed.', "errors": []}
    assert check_response(spec, "POST", "/tours", 405, method_error) == []
    listing = {"count": 1, "current_page": 1, "max_per_page": 20, "results": [TOUR], "links": []}
    assert check_response(spec, "GET", "/tours", 200, listing) == []
    options = {"name": "tours", "methods": ["GET", "HEAD", "OPTIONS"]}
    assert check_response(spec, "OPTIONS", "/tours/1", 200, options) == []


def test_options_is_a_convention_of_every_listed_path():
    spec = load_spec()
    assert check_response(spec, "OPTIONS", "/tours/1", 200, {"name": "tours"}) == [
        "$: missing 'methods'"
    ]
    assert check_response(spec, "OPTIONS", "/tours/1", 200, None) == [
        "$: expected object, got NoneType None"
    ]
    assert check_response(spec, "OPTIONS", "/tours/1", 405, {}) == [
        "OPTIONS /tours/1: status 405 not documented (/tours/{id})"
    ]


def test_undocumented_status_or_body_is_reported():
    spec = load_spec()
    assert check_response(spec, "GET", "/tours/1", 201, TOUR) == [
        "GET /tours/1: status 201 not documented (/tours/{id})"
    ]
    assert check_response(spec, "DELETE", "/tours/1", 404, NOT_FOUND) == [
        "DELETE /tours/1: status 404 not documented (/tours/{id})"
    ]
    assert check_response(spec, "GET", "/nope", 200, {}) == [
        "GET /nope: status 200 not documented (None)"
    ]
    assert check_response(spec, "GET", "/tours/1", 200, {**TOUR, "tour_id": 1}) == [
        "$: unexpected property 'tour_id'"
    ]
    assert check_response(spec, "GET", "/tours/1", 404, {"message": "Not found."}) == [
        "$: missing 'http_status_code'",
        "$: missing 'errors'",
    ]
    with pytest.raises(ContractError, match="unexpected property 'tour_id'"):
        assert_conforms(spec, "GET", "/tours/1", 200, {**TOUR, "tour_id": 1})


def test_spec_uses_only_the_supported_subset():
    supported = {
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "nullable",
        "$ref",
        "additionalProperties",
        "description",
        "format",
        "minimum",
        "maximum",
        "maxLength",
        "pattern",
        "default",
        "example",
    }
    spec = load_spec()

    def walk(schema):
        assert set(schema) <= supported, set(schema) - supported
        for sub in schema.get("properties", {}).values():
            walk(sub)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"])

    for schema in spec["components"]["schemas"].values():
        walk(schema)
    assert spec["components"]["securitySchemes"]["ApplicationKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Application-Key",
    }
    assert set(spec["components"]["responses"]) >= {
        "BadRequest",
        "Unauthorized",
        "NotFound",
        "MethodNotAllowed",
        "BadGateway",
    }


def media_types(node, where="$"):
    """Every `content` map of the spec (request bodies and responses), with where it is."""
    if isinstance(node, dict):
        if "application/json" in node:
            yield where, node
        for key, value in node.items():
            yield from media_types(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from media_types(value, f"{where}[{index}]")


def test_every_body_is_documented_in_json_and_in_xml_with_one_schema():
    contents = list(media_types(load_spec()["paths"])) + list(
        media_types(load_spec()["components"]["responses"])
    )
    assert len(contents) > 30
    for where, content in contents:
        assert set(content) == {"application/json", "application/xml"}, where
        assert content["application/xml"]["schema"] == content["application/json"]["schema"], where


def test_the_xml_shape_is_described_with_an_example_both_gateways_write():
    description = load_spec()["info"]["description"]
    assert DECLARATION.decode().strip() in description
    assert OPENAPI_EXAMPLE.decode() in description
    parameter = load_spec()["components"]["parameters"]["Format"]
    assert (parameter["in"], parameter["schema"]["enum"]) == ("query", ["json", "xml"])


def xml(body: str) -> bytes:
    return DECLARATION + body.encode()


TOUR_XML = xml(
    "<root><id>1</id><href>http://h/tours/1</href><name>n</name><duration_days>3</duration_days>"
    "<region>r</region><product_line>p</product_line>"
    "<departures><href>http://h/tours/1/departures</href></departures></root>"
)
NOT_FOUND_XML = xml(
    "<root><http_status_code>404</http_status_code><message>Not found.</message>"
    "<errors></errors></root>"
)


def test_xml_answers_are_read_back_by_their_schema():
    spec = load_spec()
    assert check_xml_response(spec, "GET", "/tours/1", 200, TOUR_XML) == []
    assert check_xml_response(spec, "GET", "/tours/1", 404, NOT_FOUND_XML) == []
    listing = xml(
        "<root><count>1</count><current_page>1</current_page><max_per_page>20</max_per_page>"
        f"<results><list-item>{TOUR_XML[len(DECLARATION) + 6 : -7].decode()}</list-item>"
        "</results><links><list-item><rel>next</rel><href>http://h/tours?page=2</href>"
        "</list-item></links></root>"
    )
    assert check_xml_response(spec, "GET", "/tours", 200, listing) == []
    assert_xml_conforms(spec, "GET", "/tours", 200, listing)


def test_xml_answers_that_break_the_contract_are_reported():
    spec = load_spec()
    assert check_xml_response(spec, "GET", "/tours/1", 200, TOUR_XML.replace(b"3<", b"x<")) == [
        "$.duration_days: expected integer, got str 'x'"
    ]
    assert check_xml_response(spec, "GET", "/tours/1", 200, TOUR_XML[len(DECLARATION) :]) == [
        "no XML declaration: b'<root><id>1</id><href>http://h/tours/1</href><name>n</name><'"
    ]
    assert check_xml_response(
        spec, "GET", "/tours/1", 404, NOT_FOUND_XML.replace(b"root>", b"error>")
    ) == ["root element is <error>, not <root>"]
    assert check_xml_response(spec, "GET", "/tours/1", 404, xml("<root>")) == [
        "no element found: line 2, column 6"
    ]
    assert check_xml_response(spec, "GET", "/tours/1", 201, TOUR_XML) == [
        "GET /tours/1: status 201 not documented (/tours/{id})"
    ]
    with pytest.raises(ContractError, match=r"\(XML\)"):
        assert_xml_conforms(spec, "GET", "/tours/1", 200, NOT_FOUND_XML)


def test_an_unknown_format_is_a_404_convention_on_every_path():
    spec = load_spec()
    not_found = {"http_status_code": 404, "message": "Not found.", "errors": []}
    assert check_response(spec, "GET", "/bookings?format=csv", 404, not_found) == []
    assert check_response(spec, "DELETE", "/tours/1?format=XML", 404, not_found) == []
    assert check_xml_response(spec, "GET", "/bookings?page=2&format=yaml", 404, NOT_FOUND_XML) == []
    assert check_response(spec, "GET", "/bookings?format=xml", 404, not_found) == [
        "GET /bookings?format=xml: status 404 not documented (/bookings)"
    ]
    assert check_response(spec, "GET", "/bookings?format=", 404, not_found) == [
        "GET /bookings?format=: status 404 not documented (/bookings)"
    ]


def test_credential_refusals_are_a_convention_of_every_path_and_method():
    spec = load_spec()
    forbidden = {"http_status_code": 403, "message": "Needs the write scope.", "errors": []}
    for method, path in (("POST", "/bookings"), ("DELETE", "/tours/1"), ("GET", "/nope")):
        for status in (400, 401, 403, 502):
            assert check_response(spec, method, path, status, forbidden) == []
    assert check_response(spec, "GET", "/tours/1", 418, forbidden) == [
        "GET /tours/1: status 418 not documented (/tours/{id})"
    ]
    scheme = spec["components"]["securitySchemes"]["OAuth2"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "http://127.0.0.1:5104/oauth/token"
    assert set(scheme["flows"]["clientCredentials"]["scopes"]) == {"read", "write"}
    assert spec["security"] == [{"ApplicationKey": []}, {"OAuth2": []}]
