"""Dry runs through both gateways under gunicorn, in front of real source systems: each test runs
against legacy and against DRF, which must agree.

The world here is the module's own: every process shares a known STRANGLER_SHADOW_SECRET, so
the test signs dry runs as the proxy would. A genuine dry run answers what the real request then
answers, to the byte, and leaves every source system as it was; anything else carrying a dry-run
header is refused with the 403 envelope before the key check.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, WINDOW, sign
from stack.runner import Stack
from tests.support import HEADERS, ROOT, World, free_config
from tests.support.answers import Answer

SECRET = "dry-run-test-secret"
REFUSED = b'{"http_status_code": 403, "message": "Invalid dry-run signature.", "errors": []}'
UNAUTHORIZED = (
    b'{"http_status_code": 401, "message": "Missing or invalid X-Application-Key.", "errors": []}'
)
BOOKING = {
    "customer_id": 3,
    "departure_id": 4,
    "travellers": 2,
    "currency": "EUR",
    "total_amount": "1200.50",
    "contact_email": "dry@example.com",
}
CUSTOMER = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
# Everything a write of the API could touch, or read back into its answer.
COLLECTIONS = [
    ("reservations", "bookings"),
    ("reservations", "customers"),
    ("crm", "bookings"),
    ("crm", "customers"),
]
CREATED = re.compile(rb'"date_created": "\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"')


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("dry-run")
    with Stack(cwd=ROOT, log_dir=base / "logs") as stack:
        world = World(free_config(base / "data", shadow_secret=SECRET), stack)
        world.start_sources()
        world.start_legacy()
        world.start_drf()
        yield world


@pytest.fixture(params=["legacy", "drf"])
def gateway(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def send(
    world: World, gateway: str, method: str, target: str, body: bytes, headers: dict[str, str]
) -> Answer:
    url = world.url(gateway) + target
    sent = {**HEADERS, "Content-Type": "application/json", **headers}
    return Answer.of(requests.request(method, url, data=body, headers=sent, timeout=10))


def stored(world: World) -> dict[str, Any]:
    return {
        f"{system}/{collection}": requests.get(
            f"{world.url(system)}/{collection}?limit=1000", timeout=5
        ).json()
        for system, collection in COLLECTIONS
    }


def signed(method: str, target: str, body: bytes, **changes: Any) -> dict[str, str]:
    """Genuine dry-run headers of a request (`changes`: `secret` or `now` made wrong)."""
    secret, now = changes.get("secret", SECRET), changes.get("now", time.time())
    return sign(secret, method, target, body, now)


WRITES = [
    ("POST", "/bookings", BOOKING),
    ("POST", "/bookings/?page=2", BOOKING),
    ("POST", "/customers", CUSTOMER),
    ("PUT", "/bookings/5", {**BOOKING, "status": "confirmed"}),
    ("PATCH", "/bookings/6", {"travellers": 3}),
    ("PATCH", "/customers/7", {"nationality": "FR"}),
    ("POST", "/bookings", {**BOOKING, "travellers": 99}),  # 400
    ("PATCH", "/bookings/999999", {"travellers": 3}),  # 404
    ("POST", "/bookings", [1]),  # 400: not an object
]


@pytest.mark.parametrize(("method", "target", "fields"), WRITES)
def test_a_dry_run_answers_what_the_write_answers_and_stores_nothing(
    shadowed: World, gateway: str, method: str, target: str, fields: Any
) -> None:
    body = json.dumps(fields).encode()
    before = stored(shadowed)
    dry = send(shadowed, gateway, method, target, body, signed(method, target, body))
    assert stored(shadowed) == before
    assert timeless(dry) == timeless(send(shadowed, gateway, method, target, body, {}))


def timeless(answer: Answer) -> Answer:
    """`answer` with a created booking's `date_created` (the gateway's clock, to the second,
    so a second apart between the dry run and the write) blanked."""
    return replace(answer, body=CREATED.sub(b'"date_created": "..."', answer.body))


def test_a_dry_run_post_gets_the_id_the_real_post_then_gets(shadowed: World, gateway: str) -> None:
    body = json.dumps(BOOKING).encode()
    dry = send(shadowed, gateway, "POST", "/bookings", body, signed("POST", "/bookings", body))
    real = send(shadowed, gateway, "POST", "/bookings", body, {})
    assert (dry.status, real.status) == (201, 201)
    assert json.loads(dry.body)["id"] == json.loads(real.body)["id"]


@pytest.mark.parametrize("target", ["/bookings?page=2&max_per_page=3", "/bookings/7", "/nowhere"])
def test_a_genuine_dry_run_read_answers_as_usual(
    shadowed: World, gateway: str, target: str
) -> None:
    dry = send(shadowed, gateway, "GET", target, b"", signed("GET", target, b""))
    assert dry == send(shadowed, gateway, "GET", target, b"", {})


def forgeries(method: str, target: str, body: bytes) -> list[dict[str, str]]:
    genuine = signed(method, target, body)
    return [
        signed(method, target, body, secret="not-the-secret"),
        signed(method, target, body, now=time.time() - WINDOW - 1),  # replayed
        {SHADOW_HEADER: "dry-run"},  # no signature
        {SIGNATURE_HEADER: genuine[SIGNATURE_HEADER]},  # no X-Strangler-Shadow
        {**genuine, SHADOW_HEADER: "yes"},
        {**genuine, SIGNATURE_HEADER: "t=abc,v1=00"},  # malformed
        signed(method, target, body + b" "),  # another body
        signed(method, target + "?page=1", body),  # another target
    ]


FORGERIES = range(len(forgeries("POST", "/bookings", b"")))
REQUESTS = [
    ("POST", "/bookings", json.dumps(BOOKING).encode()),
    ("PATCH", "/bookings/8", b'{"travellers": 4}'),
    ("GET", "/bookings/8", b""),
    ("DELETE", "/nowhere", b""),
]


@pytest.mark.parametrize("key", [HEADERS, {}], ids=["key", "no-key"])
@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize(("method", "target", "body"), REQUESTS)
def test_anything_but_a_genuine_dry_run_is_refused_first_and_changes_nothing(
    shadowed: World,
    gateway: str,
    method: str,
    target: str,
    body: bytes,
    forgery: int,
    key: dict[str, str],
) -> None:
    before = stored(shadowed)
    headers = {"X-Application-Key": key.get("X-Application-Key", "")}
    forged = {**headers, **forgeries(method, target, body)[forgery]}
    answer = send(shadowed, gateway, method, target, body, forged)
    assert answer == Answer(
        403,
        (
            ("content-length", str(len(REFUSED))),
            ("content-type", "application/json"),
            ("vary", "Accept"),
        ),
        REFUSED,
    )
    assert stored(shadowed) == before


def test_a_genuine_dry_run_still_needs_a_key(shadowed: World, gateway: str) -> None:
    body = json.dumps(BOOKING).encode()
    headers = {"X-Application-Key": "", **signed("POST", "/bookings", body)}
    answer = send(shadowed, gateway, "POST", "/bookings", body, headers)
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)


def test_refusals_are_logged_with_their_reason_and_never_the_secret(
    shadowed: World, gateway: str
) -> None:
    headers = signed("GET", "/bookings/9", b"", now=time.time() - WINDOW - 5)
    assert send(shadowed, gateway, "GET", "/bookings/9", b"", headers).status == 403
    log = shadowed.log(gateway)
    assert "refused dry run GET /bookings/9: signature expired" in log
    assert SECRET not in log
