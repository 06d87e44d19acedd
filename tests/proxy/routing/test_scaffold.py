"""proxy.routing.scaffold: the first routes.yaml from an OpenAPI document or an access log,
parsed back by the one routes parser."""

from __future__ import annotations

import json

import pytest
import yaml

from proxy.routing import scaffold
from proxy.routing.parser import parse_table
from tests.support import ROOT

BACKENDS = (("legacy", "http://127.0.0.1:5000"), ("drf", "http://127.0.0.1:8000"))


def ninety_resources() -> dict[str, object]:
    """A generated OpenAPI document: 90 resources, each a collection and an object path."""
    paths: dict[str, object] = {}
    for n in range(90):
        paths[f"/resource-{n:02d}"] = {"get": {}}
        paths[f"/resource-{n:02d}/{{id}}"] = {"get": {}, "put": {}}
    paths["/{tenant}/things"] = {"get": {}}
    paths["/"] = {"get": {}}
    return {"openapi": "3.0.3", "paths": paths}


def test_our_openapi_document_gives_a_valid_table_of_its_resources() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    found = scaffold.found_in_openapi(spec)
    text = scaffold.routes_text(found.keys, BACKENDS, "legacy", source="openapi.yaml")
    table = parse_table(text, environ={})
    assert list(table.routes) == [
        "bookings", "customers", "departures", "tours", "itineraries", "itinerary_maps",
        "accommodations",
    ]  # fmt: skip
    assert {route.backend for route in table.routes.values()} == {"legacy"}
    assert table.default == "legacy"
    assert [backend.url for backend in table.backends.values()] == [url for _, url in BACKENDS]
    assert "  tours: legacy  # /tours, /tours/{id}, /tours/{id}/departures\n" in text


def test_ninety_resources_and_what_is_left_out() -> None:
    found = scaffold.found_in_openapi(ninety_resources())
    assert len(found.keys) == 90
    assert found.skipped == ("/{tenant}/things", "/")
    text = scaffold.routes_text(
        found.keys, BACKENDS, "drf", source="spec.yaml", skipped=found.skipped
    )
    table = parse_table(text, environ={})
    assert len(table.routes) == 90
    assert {route.backend for route in table.routes.values()} == {"drf"}
    assert text.endswith(
        "# Left out (no routing key the table can name):\n#   /{tenant}/things\n#   /\n"
    )
    assert text.splitlines()[:5] == [
        "# routes.yaml written by `strangler init` from spec.yaml.",
        "# 90 resources, every one on drf. Check the backend URLs, then run",
        "# `strangler validate` and `strangler serve`; move a resource with",
        "# `strangler flip RESOURCE legacy` (and back with `strangler rollback RESOURCE`).",
        "version: 1",
    ]


def test_nested_shapes_become_their_own_keys() -> None:
    spec = {"paths": {"/tours/{id}/departures/{d}": {}, "/tours": {}, "/tours/{id}/x y": {}}}
    keys = scaffold.from_openapi(spec, nested=True)
    assert [(key.name, key.paths) for key in keys] == [
        ("tours", ("/tours", "/tours/{id}/x y")),
        ("tours/*/departures", ("/tours/{id}/departures/{d}",)),
    ]


def test_access_log_keys_by_request_count() -> None:
    lines = [
        json.dumps({"method": "GET", "path": "/bookings/1", "status": 200}),
        json.dumps({"method": "GET", "path": "/tours?page=2", "status": 200}),
        json.dumps({"method": "POST", "path": "/bookings", "status": 201}),
        '10.0.0.1 - - [28/Nov/2026:10:00:00 +0000] "GET /bookings/2 HTTP/1.1" 200 5 "-" "ua"',
        '10.0.0.1 - - [28/Nov/2026:10:00:01 +0000] "GET /customers%2F3 HTTP/1.1" 200 5',
        "not a log line",
        json.dumps({"method": "GET", "path": "/", "status": 404}),
        "",
    ]
    found = scaffold.from_access_log(lines)
    assert [(key.name, key.requests) for key in found.keys] == [
        ("bookings", 3),
        ("customers", 1),
        ("tours", 1),
    ]
    assert found.skipped == ("not a log line", '{"method": "GET", "path": "/", "status": 404}')
    text = scaffold.routes_text(found.keys, BACKENDS, "legacy", source="access.log")
    assert "  bookings: legacy  # 3 requests\n  customers: legacy  # 1 requests\n" in text
    assert list(parse_table(text, environ={}).routes) == ["bookings", "customers", "tours"]


def test_names_yaml_would_misread_are_quoted() -> None:
    keys = (scaffold.Key("yes"), scaffold.Key("2024"), scaffold.Key("v1.2"), scaffold.Key("~x"))
    text = scaffold.routes_text(keys, BACKENDS, "legacy", source="test")
    assert list(parse_table(text, environ={}).routes) == ["yes", "2024", "v1.2", "~x"]
    empty = scaffold.routes_text((), BACKENDS, "legacy", source="test")
    assert dict(parse_table(empty, environ={}).routes) == {}


@pytest.mark.parametrize(
    ("backends", "default", "message"),
    [
        (BACKENDS, "new", "the default backend 'new' is not one of legacy, drf"),
        ((("1st", "http://h:1"),), "1st", "backend name '1st' must be a letter then"),
    ],
)
def test_bad_backends_are_refused(
    backends: tuple[tuple[str, str], ...], default: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        scaffold.routes_text((), backends, default, source="test")


def test_not_an_openapi_document() -> None:
    with pytest.raises(ValueError, match="has no `paths` mapping"):
        scaffold.found_in_openapi({"swagger": "2.0"})
