"""The minimal JSON Schema validator and the response checker of tests/contract.py."""

import pytest

from tests.support.contract import (
    ContractError,
    assert_conforms,
    check_response,
    load_spec,
    match_path,
    validate,
)

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
