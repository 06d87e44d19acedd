"""Parity: the same request to legacy and DRF gets the same answer, byte for byte.

An answer is its status, its headers (all but Date, Server and Connection, so Content-Type,
Content-Length, Vary and the presence and value of Allow) and its body bytes. Both gateways see the
same Host header, so their links are the same too. Every answer is also checked against
openapi.yaml. Writes are compared by their answers (the ids they created aside) and by the
state they leave in the source systems (the ids they created and the second each was made
at, `date_created`, aside). The one deliberate difference (drf_app/MIGRATION_NOTES.md) is
asserted as a difference.
"""

from __future__ import annotations

import json
import re
import time
from functools import cache
from typing import Any

import pytest
import requests

from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, sign
from tests.support import API_RESOURCES, HEADERS, World
from tests.support.answers import Answer
from tests.support.contract import assert_conforms, load_spec

HOST = {"Host": "api.example.test"}
RESOURCES = API_RESOURCES


NOT_FOUND = b'{"http_status_code": 404, "message": "Not found.", "errors": []}'
UNAUTHORIZED = (
    b'{"http_status_code": 401, "message": "Missing or invalid X-Application-Key.", "errors": []}'
)
DRY_RUN_REFUSED = (
    b'{"http_status_code": 403, "message": "Invalid dry-run signature.", "errors": []}'
)


@cache
def first_variation(operations_url: str, itinerary: int) -> int:
    record = requests.get(f"{operations_url}/itineraries/{itinerary}", timeout=5).json()
    return int(record["variation_ids"][0])


def send(base: str, method: str, path: str, *, contract: bool = True, **kwargs: Any) -> Answer:
    headers = {**HEADERS, **HOST, **kwargs.pop("headers", {})}
    answer = Answer.of(requests.request(method, base + path, headers=headers, timeout=10, **kwargs))
    if method != "HEAD":
        assert answer.header("Content-Length") == str(len(answer.body))
    if contract:
        assert_conforms(load_spec(), method, path, answer.status, answer.json())
    return answer


def both(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, **kwargs: Any
) -> tuple[Answer, Answer]:
    path = path.format(vid=first_variation(world.url("operations"), 1))
    return send(legacy_url, method, path, **kwargs), send(drf_url, method, path, **kwargs)


READS = [
    *(f"/{resource}" for resource in RESOURCES),
    *(f"/{resource}/?page=2&max_per_page=7" for resource in RESOURCES),
    *(f"/{resource}/2" for resource in RESOURCES),
    *(f"/{resource}/999999" for resource in RESOURCES),
    "/bookings?page=999",
    "/bookings?max_per_page=500",
    "/bookings?page=10&max_per_page=20",
    "/bookings?page=-1&max_per_page=abc",
    "/bookings?max_per_page=0",
    "/bookings?page=2&page=3&max_per_page=5&max_per_page=x",
    "/bookings?page=+2&max_per_page=%205",
    "/bookings/10",
    "/bookings/2/",
    "/bookings/02",
    "/bookings/0",
    "/bookings/abc",
    "/bookings/1/2",
    "/bookings/resource",
    "/customers/100",
    "/tours/1/departures",
    "/tours/1/departures/?page=2&max_per_page=1",
    "/tours/999/departures",
    "/tours/1/itinerary_maps",
    "/itineraries/1/itinerary_maps",
    "/itineraries/1/itinerary_maps?max_per_page=1&page=2",
    "/itineraries/999/itinerary_maps",
    "/itineraries/1/{vid}",
    "/itineraries/1/{vid}/",
    "/itineraries/2/{vid}",
    "/itineraries/1/999999",
    "/itineraries/1/{vid}/itinerary_maps",
    "/itineraries/2/{vid}/itinerary_maps",
    "/itineraries/1/{vid}/departures",
    "/itineraries/1/{vid}/itinerary_maps/1",
    "/nowhere",
    "/",
    "//bookings",
    "/bookings//1",
]


@pytest.mark.parametrize("path", READS)
def test_reads(world: World, legacy_url: str, drf_url: str, path: str) -> None:
    legacy, drf = both(world, legacy_url, drf_url, "GET", path)
    assert drf == legacy
    assert legacy.header("Content-Type") == "application/json"
    assert legacy.header("Allow") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "https"},
        {"X-Forwarded-Host": "public.example.com"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com:8443"},
    ],
)
def test_forwarded_links(world: World, legacy_url: str, drf_url: str, headers: Any) -> None:
    legacy, drf = both(world, legacy_url, drf_url, "GET", "/bookings?page=2", headers=headers)
    assert drf == legacy


@pytest.mark.parametrize("path", ["/bookings/1", "/tours", "/nowhere", "/bookings/resource"])
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS", "DELETE", "TRACE"])
@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_bad_keys(
    world: World, legacy_url: str, drf_url: str, path: str, method: str, key: str | None
) -> None:
    headers = {} if key is None else {"X-Application-Key": key}
    answers = [
        Answer.of(requests.request(method, url + path, headers={**HOST, **headers}, timeout=5))
        for url in (legacy_url, drf_url)
    ]
    expected = (
        ("content-length", str(len(UNAUTHORIZED))),
        ("content-type", "application/json"),
        ("vary", "Accept"),
        ("www-authenticate", 'Bearer realm="api"'),  # RFC 6750 §3: no token, no error code
    )
    assert answers == [Answer(401, expected, UNAUTHORIZED)] * 2


def forged_dry_run(kind: str, method: str, path: str, body: bytes) -> dict[str, str]:
    """Dry-run headers neither gateway can verify (the world's secret, if any, is not ours)."""
    genuine_looking = sign("not-the-shared-secret", method, path, body, time.time())
    return {
        "wrong-secret": genuine_looking,
        "shadow-only": {SHADOW_HEADER: "dry-run"},
        "signature-only": {SIGNATURE_HEADER: genuine_looking[SIGNATURE_HEADER]},
        "malformed": {SHADOW_HEADER: "dry-run", SIGNATURE_HEADER: "t=soon,v1="},
    }[kind]


@pytest.mark.parametrize("kind", ["wrong-secret", "shadow-only", "signature-only", "malformed"])
@pytest.mark.parametrize("path", ["/bookings", "/bookings/1", "/nowhere"])
@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("key", ["demo", ""], ids=["key", "no-key"])
def test_forged_dry_runs_are_refused_alike_before_anything_else(
    world: World, legacy_url: str, drf_url: str, kind: str, path: str, method: str, key: str
) -> None:
    """403 before the key check, the URL and the method: the same bytes from both gateways."""
    body = json.dumps(BOOKING).encode() if method in ("POST", "PATCH") else b""
    headers = {"X-Application-Key": key, **forged_dry_run(kind, method, path, body)}
    count = f"{world.url('reservations')}/bookings?limit=0"
    before = requests.get(count, timeout=5).json()
    legacy, drf = both(
        world, legacy_url, drf_url, method, path, contract=False, headers=headers, data=body
    )
    expected = (
        ("content-length", str(len(DRY_RUN_REFUSED))),
        ("content-type", "application/json"),
        ("vary", "Accept"),
    )
    assert [legacy, drf] == [Answer(403, expected, DRY_RUN_REFUSED)] * 2
    assert requests.get(count, timeout=5).json() == before


NOT_ALLOWED = [
    ("DELETE", "/bookings/1", "GET, HEAD, OPTIONS, PUT, PATCH"),
    ("DELETE", "/bookings", "GET, HEAD, OPTIONS, POST"),
    ("PUT", "/bookings", "GET, HEAD, OPTIONS, POST"),
    ("PATCH", "/customers/", "GET, HEAD, OPTIONS, POST"),
    ("POST", "/bookings/1", "GET, HEAD, OPTIONS, PUT, PATCH"),
    ("POST", "/tours", "GET, HEAD, OPTIONS"),
    ("PUT", "/tours/1", "GET, HEAD, OPTIONS"),
    ("PATCH", "/departures/1", "GET, HEAD, OPTIONS"),
    ("POST", "/itineraries/1/itinerary_maps", "GET, HEAD, OPTIONS"),
    ("PUT", "/itineraries/1/{vid}", "GET, HEAD, OPTIONS"),
    ("DELETE", "/itineraries/1/{vid}/itinerary_maps", "GET, HEAD, OPTIONS"),
    ("TRACE", "/bookings", "GET, HEAD, OPTIONS, POST"),
    ("TRACE", "/customers/1/", "GET, HEAD, OPTIONS, PUT, PATCH"),
    ("FOO", "/tours/1/departures", "GET, HEAD, OPTIONS"),
]


@pytest.mark.parametrize(("method", "path", "allow"), NOT_ALLOWED)
def test_methods_not_allowed(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, allow: str
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, method, path, json={})
    assert drf == legacy
    message = f'Method \\"{method}\\" not allowed.'.encode()
    assert legacy.status == 405
    assert legacy.body == b'{"http_status_code": 405, "message": "%s", "errors": []}' % message
    assert legacy.header("Allow") == allow


UNKNOWN_PATHS = ["/nowhere", "/nowhere/1", "/bookings/0", "/bookings/1/2", "/tours/1/bookings"]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO", "DELETE", "OPTIONS", "PUT"])
def test_any_method_on_an_unknown_path_is_not_found(
    world: World, legacy_url: str, drf_url: str, method: str, path: str
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, method, path)
    assert drf == legacy
    assert (legacy.status, legacy.header("Allow"), legacy.body) == (404, None, NOT_FOUND)


OPTIONS = [
    ("/bookings", "bookings", "GET, HEAD, OPTIONS, POST"),
    ("/customers/", "customers", "GET, HEAD, OPTIONS, POST"),
    ("/bookings/1", "bookings", "GET, HEAD, OPTIONS, PUT, PATCH"),
    ("/bookings/999999", "bookings", "GET, HEAD, OPTIONS, PUT, PATCH"),
    ("/tours", "tours", "GET, HEAD, OPTIONS"),
    ("/tours/1/departures", "departures", "GET, HEAD, OPTIONS"),
    ("/itineraries/1/{vid}", "itineraries", "GET, HEAD, OPTIONS"),
    ("/itineraries/1/{vid}/itinerary_maps", "itinerary_maps", "GET, HEAD, OPTIONS"),
]


@pytest.mark.parametrize(("path", "name", "allow"), OPTIONS)
def test_options(
    world: World, legacy_url: str, drf_url: str, path: str, name: str, allow: str
) -> None:
    """200 naming the resource and its methods, in the JSON body (gapipy's `options()` reads
    it) and in `Allow`."""
    legacy, drf = both(world, legacy_url, drf_url, "OPTIONS", path)
    assert drf == legacy
    body = json.dumps({"name": name, "methods": allow.split(", ")}).encode()
    assert legacy == Answer(
        200,
        (
            ("allow", allow),
            ("content-length", str(len(body))),
            ("content-type", "application/json"),
            ("vary", "Accept"),
        ),
        body,
    )


@pytest.mark.parametrize("path", ["/bookings/1", "/tours/1/departures", "/nowhere", "/tours/0"])
def test_head(world: World, legacy_url: str, drf_url: str, path: str) -> None:
    """HEAD: GET's status and headers (Content-Length included), no body."""
    legacy, drf = both(world, legacy_url, drf_url, "HEAD", path, contract=False)
    get = send(legacy_url, "GET", path)
    assert drf == legacy
    assert legacy == Answer(get.status, get.headers, b"")


BOOKING = {
    "customer_id": 7,
    "departure_id": 8,
    "travellers": 3,
    "currency": "AUD",
    "total_amount": "999.9",
    "contact_email": "parity@example.com",
}
CUSTOMER = {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
INVALID_WRITES = [
    ("POST", "/bookings", {}),
    ("POST", "/bookings", {**BOOKING, "travellers": 0, "currency": "", "status": "done"}),
    ("POST", "/bookings", {**BOOKING, "customer_id": "x", "departure_id": 1.5}),
    ("POST", "/bookings", {**BOOKING, "customer_id": True, "travellers": "21"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": "1.234"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": "-1"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": "abc", "contact_email": "x@"}),
    ("POST", "/bookings", {**BOOKING, "total_amount": None, "status": None}),
    ("POST", "/bookings", {**BOOKING, "contact_email": ""}),
    ("POST", "/bookings", [BOOKING]),
    ("POST", "/bookings", "text"),
    ("POST", "/customers", {}),
    ("POST", "/customers", {**CUSTOMER, "first_name": "", "last_name": " "}),
    ("POST", "/customers", {**CUSTOMER, "first_name": ["x"], "last_name": "y" * 101}),
    ("POST", "/customers", {**CUSTOMER, "email": 12, "date_of_birth": "2000-13-01"}),
    ("POST", "/customers", {**CUSTOMER, "date_of_birth": "01/02/2000", "nationality": "CAN"}),
    ("POST", "/customers", {**CUSTOMER, "nationality": ["CA"]}),
    ("POST", "/customers", {**CUSTOMER, "nationality": "ca"}),
    ("POST", "/customers", {**CUSTOMER, "nationality": {"name": "Canadian"}}),
    ("POST", "/customers", {**CUSTOMER, "nationality": {"id": "XX", "href": "h"}}),
    ("POST", "/customers", {**CUSTOMER, "nationality": {"id": None}}),
    ("POST", "/customers", {**CUSTOMER, "nationality": True}),
    ("POST", "/customers", {**CUSTOMER, "first_name": "\u00eb" * 101}),
    ("PUT", "/bookings/1", {"travellers": 2}),
    ("PUT", "/customers/1", {**CUSTOMER, "email": None}),
    ("PATCH", "/bookings/1", {"travellers": 25}),
    ("PATCH", "/bookings/1", {"currency": "JPY", "status": "open"}),
    ("PATCH", "/bookings/1", {"currency": "\u00a5\u20ac"}),
    ("PATCH", "/customers/2", {"first_name": ""}),
    ("PATCH", "/bookings/999999", {"travellers": 25}),
    ("PUT", "/customers/999999", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), INVALID_WRITES)
def test_rejected_writes(
    world: World, legacy_url: str, drf_url: str, method: str, path: str, body: Any
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, method, path, json=body)
    assert legacy.status in (400, 404)
    assert drf == legacy


@pytest.mark.parametrize("data", [b"", b"{oops", b"null", b"42"])
def test_bodies_that_are_not_json_objects(
    world: World, legacy_url: str, drf_url: str, data: bytes
) -> None:
    legacy, drf = both(world, legacy_url, drf_url, "POST", "/bookings", data=data)
    assert legacy.status == 400
    assert (
        legacy.body == b'{"http_status_code": 400, "message": "Invalid JSON body.", "errors": []}'
    )
    assert drf == legacy


UTC_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
CREATED = re.compile(rb'"date_created": "([^"]*)"')


def stored(world: World, resource: str, pk: int) -> dict[str, Any]:
    record = requests.get(f"{world.url('reservations')}/{resource}/{pk}", timeout=5).json()
    record.pop("id")
    return dict(record)


def timeless(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record with its `date_created` (each gateway's clock, to the second) checked
    for its format and then left out."""
    if "date_created" in record:
        assert UTC_SECOND.fullmatch(record["date_created"])
    return {key: value for key, value in record.items() if key != "date_created"}


def timeless_answer(answer: Answer) -> Answer:
    """`answer` with its `date_created` checked for its format and blanked (same length)."""
    for created in CREATED.findall(answer.body):
        assert UTC_SECOND.fullmatch(created.decode())
    body = CREATED.sub(b'"date_created": "YYYY-MM-DDTHH:MM:SSZ"', answer.body)
    return Answer(answer.status, answer.headers, body)


def assert_same_write(resource: str, answers: list[Answer], ids: list[int]) -> None:
    """Both answers alike, but for the id each gateway's write landed on and the second it
    landed at."""
    legacy, drf = (timeless_answer(answer) for answer in answers)
    assert drf.with_id(resource, ids[1], ids[0]) == legacy


def create_through_both(
    world: World, legacy_url: str, drf_url: str, resource: str, body: Any
) -> list[int]:
    answers = [send(url, "POST", f"/{resource}", json=body) for url in (legacy_url, drf_url)]
    assert [answer.status for answer in answers] == [201, 201]
    ids = [answer.json()["id"] for answer in answers]
    assert_same_write(resource, answers, ids)
    assert timeless(stored(world, resource, ids[1])) == timeless(stored(world, resource, ids[0]))
    return ids


def change_through_both(
    world: World,
    legacy_url: str,
    drf_url: str,
    method: str,
    resource: str,
    ids: list[int],
    body: Any,
) -> None:
    answers = [
        send(url, method, f"/{resource}/{pk}", json=body)
        for url, pk in zip((legacy_url, drf_url), ids, strict=True)
    ]
    assert [answer.status for answer in answers] == [200, 200]
    assert_same_write(resource, answers, ids)
    assert timeless(stored(world, resource, ids[1])) == timeless(stored(world, resource, ids[0]))


WRITES = [
    ("bookings", BOOKING, {**BOOKING, "status": "cancelled", "total_amount": 10, "x": 1}),
    ("bookings", {**BOOKING, "travellers": "4", "total_amount": 5.5}, {"travellers": 20.0}),
    ("customers", CUSTOMER, {**CUSTOMER, "date_of_birth": "1906-12-09", "nationality": "US"}),
    ("customers", {**CUSTOMER, "nationality": "GB", "id": 1}, {"email": " g@example.com "}),
    # A nationality as reads show it (gapipy sends the stub back): only its id is stored.
    ("customers", {**CUSTOMER, "nationality": "GB"}, {"nationality": {"id": "FR", "name": "x"}}),
    ("customers", {**CUSTOMER, "last_name": "M\u00fcller \u65e5\u672c"}, {"first_name": "\u00c9"}),
]


@pytest.mark.parametrize(("resource", "created", "changed"), WRITES)
def test_writes_leave_the_same_state(
    world: World, legacy_url: str, drf_url: str, resource: str, created: Any, changed: Any
) -> None:
    ids = create_through_both(world, legacy_url, drf_url, resource, created)
    partial = set(changed) < set(created) or "id" in created
    method = "PATCH" if partial else "PUT"
    change_through_both(world, legacy_url, drf_url, method, resource, ids, changed)


def test_patch_after_put_leaves_the_same_state(world: World, legacy_url: str, drf_url: str) -> None:
    ids = create_through_both(world, legacy_url, drf_url, "bookings", BOOKING)
    change_through_both(world, legacy_url, drf_url, "PUT", "bookings", ids, BOOKING)
    change_through_both(
        world, legacy_url, drf_url, "PATCH", "bookings", ids, {"status": "confirmed"}
    )


def test_put_keeps_server_owned_and_omitted_optional_fields(
    world: World, legacy_url: str, drf_url: str
) -> None:
    """PUT replaces the fields it sends; date_created (server-owned) and the optional fields
    it leaves out (status, contact_email) keep their stored values."""
    created = {**BOOKING, "status": "confirmed"}
    ids = create_through_both(world, legacy_url, drf_url, "bookings", created)
    before = stored(world, "bookings", ids[0])
    required = {key: value for key, value in BOOKING.items() if key != "contact_email"}
    replaced = {**required, "travellers": 5, "total_amount": "12", "currency": "EUR"}
    change_through_both(world, legacy_url, drf_url, "PUT", "bookings", ids, replaced)
    assert stored(world, "bookings", ids[0]) == {
        **before,
        "travellers": 5,
        "total_amount": "12.00",
        "currency": "EUR",
    }
    assert before["status"] == "confirmed"
    assert before["contact_email"] == BOOKING["contact_email"]
    assert UTC_SECOND.fullmatch(before["date_created"])


def test_put_keeps_omitted_optional_customer_fields(
    world: World, legacy_url: str, drf_url: str
) -> None:
    created = {**CUSTOMER, "date_of_birth": "1906-12-09", "nationality": "US"}
    ids = create_through_both(world, legacy_url, drf_url, "customers", created)
    change_through_both(
        world, legacy_url, drf_url, "PUT", "customers", ids, {**CUSTOMER, "email": "g@x.org"}
    )
    assert stored(world, "customers", ids[0]) == {**created, "email": "g@x.org"}


def test_documented_difference_post_to_resource_suffix(
    world: World, legacy_url: str, drf_url: str
) -> None:
    """Legacy accepts `POST /bookings/resource` as `POST /bookings` (outside the contract);
    DRF answers 404."""
    legacy = send(legacy_url, "POST", "/bookings/resource", contract=False, json=BOOKING)
    drf = send(drf_url, "POST", "/bookings/resource", json=BOOKING)
    assert legacy.status == 201
    assert (
        stored(world, "bookings", legacy.json()["id"])["contact_email"] == BOOKING["contact_email"]
    )
    headers = (("content-length", "64"), ("content-type", "application/json"), ("vary", "Accept"))
    assert drf == Answer(404, headers, NOT_FOUND)
