"""proxy.routing.pin_edit and yamledit.add_list_item: a pin added to routes.yaml byte for byte
(only the added lines), under the lock with its audit line; flips and rollbacks of nested keys."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path

import pytest

from proxy.routing import edit
from proxy.routing.model import Pin
from proxy.routing.parser import load_table, parse_table
from proxy.routing.pin_edit import pin, secret_pin
from proxy.routing.yamledit import EditConflict, EditError, add_list_item

ROUTES = """\
# routes for the pin tests
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings: drf                  # short form
  customers:                     # long form
    backend: drf
    canary: {backend: legacy, percent: 10}

  tours: drf
  tours/*/departures:
    backend: legacy
    clients:
      - {match: client_ip, value: "10.0.0.0/8", backend: drf}
# trailing comment
"""
DIGEST = hashlib.sha256(b"key-of-broken-client").hexdigest()
HEADER = "header:X-Application-Key"
HEADER_PIN = f'{{match: "header:X-Application-Key", value_sha256: "{DIGEST}", backend: legacy}}'


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return path


def audit(routes: Path) -> list[dict[str, str]]:
    path = routes.with_name("routes.audit.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def diff(before: str, after: str) -> list[str]:
    """The changed lines, `-` removed and `+` added."""
    lines = difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True))
    return [line for line in lines if line[:1] in "+-"]


def pin_header(
    routes: Path, resource: str, backend: str = "legacy", reason: str = ""
) -> edit.Change:
    client = secret_pin("header:X-Application-Key", "key-of-broken-client", backend)
    return pin(routes, resource, client, user="ana", reason=reason, environ={})


def test_a_pin_of_a_long_form_entry_adds_two_lines_and_nothing_else(routes: Path) -> None:
    change = pin_header(routes, "customers", reason="client 42 breaks on DRF dates")
    after = routes.read_text()
    assert diff(ROUTES, after) == ["+     clients:\n", f"+       - {HEADER_PIN}\n"]
    assert after.index("clients:") > after.index("canary:")  # at the end of the entry
    route = load_table(routes, environ={}).routes["customers"]
    assert route.clients == (Pin("header:X-Application-Key", "legacy", None, DIGEST),)
    assert (change.resource, change.from_backend, change.to_backend) == (
        "customers",
        "drf",
        "legacy",
    )
    [line] = audit(routes)
    assert line == {
        "time": line["time"],
        "user": "ana",
        "resource": "customers",
        "from": "drf",
        "to": "legacy",
        "reason": f"client 42 breaks on DRF dates (pin {HEADER} sha256:{DIGEST[:8]}…)",
        "action": "pin",
    }
    assert "key-of-broken-client" not in after + json.dumps(line)


def test_a_second_pin_adds_one_line_to_the_list(routes: Path) -> None:
    pin_header(routes, "tours/*/departures")
    assert diff(ROUTES, routes.read_text()) == [f"+       - {HEADER_PIN}\n"]
    clients = load_table(routes, environ={}).routes["tours/*/departures"].clients
    assert [client.match for client in clients] == ["client_ip", "header:X-Application-Key"]


def test_a_short_entry_becomes_long_its_comment_kept(routes: Path) -> None:
    pin_header(routes, "bookings")
    assert diff(ROUTES, routes.read_text()) == [
        "-   bookings: drf                  # short form\n",
        "+   bookings:                  # short form\n",
        "+     backend: drf\n",
        "+     clients:\n",
        f"+       - {HEADER_PIN}\n",
    ]
    assert load_table(routes, environ={}).routes["bookings"].backend == "drf"


def test_an_unlisted_resource_is_listed_where_it_already_went(routes: Path) -> None:
    pin(routes, "payments", secret_pin("client_ip", "192.0.2.7", "drf"), user="ana", environ={})
    # tours is on drf: /tours/3/itinerary went there, and still does for every other client
    pin(routes, "tours/*/itinerary", secret_pin("cookie:s", "v", "legacy"), user="ana", environ={})
    table = load_table(routes, environ={})
    assert table.routes["payments"].backend == "legacy"  # the default
    assert table.routes["tours/*/itinerary"].backend == "drf"
    assert [line["from"] for line in audit(routes)] == ["legacy", "drf"]


def test_the_same_pin_again_changes_nothing(routes: Path) -> None:
    pin_header(routes, "customers")
    text = routes.read_text()
    change = pin_header(routes, "customers")
    assert (change.recorded, routes.read_text(), len(audit(routes))) == (False, text, 1)


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (
            secret_pin("header:X-Application-Key", "key-of-broken-client", "drf"),
            "^'customers' already pins that client to legacy: edit routes.yaml$",
        ),
        (
            secret_pin("header:X-Application-Key", "other-client", "drff"),
            r"^unknown backend 'drff' \(backends: drf, legacy\)$",
        ),
    ],
)
def test_refused_pins_leave_the_file_alone(routes: Path, client: Pin, message: str) -> None:
    pin_header(routes, "customers")
    text = routes.read_text()
    with pytest.raises(EditError, match=message):
        pin(routes, "customers", client, user="ana", environ={})
    assert (routes.read_text(), len(audit(routes))) == (text, 1)


@pytest.mark.parametrize(
    ("match", "value", "message"),
    [
        ("client_ip", "10.0.0.1/8", "not an IP address or a CIDR network"),
        ("query:x", "a", "cannot pin by 'query:x'"),
        ("header:X", "", "the value to pin is empty"),
    ],
)
def test_bad_pins_are_refused_before_any_edit(match: str, value: str, message: str) -> None:
    with pytest.raises(EditError, match=message):
        secret_pin(match, value, "legacy")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a flow entry gets a flow list
            "resources:\n  a: {backend: x}  # c\n",
            "resources:\n  a: {backend: x, clients: [{m: 1}]}  # c\n",
        ),
        (
            "resources:\n  a: {backend: x, clients: [{m: 0}]}\n",
            "resources:\n  a: {backend: x, clients: [{m: 0}, {m: 1}]}\n",
        ),
        (
            "resources:\n  a:\n    backend: x\n    clients: []\n",
            "resources:\n  a:\n    backend: x\n    clients: [{m: 1}]\n",
        ),
        (  # the short form in a flow mapping
            "resources: {a: 'x', b: y}\n",
            "resources: {a: {backend: 'x', clients: [{m: 1}]}, b: y}\n",
        ),
        (  # an indentless list, then a comment and another entry
            "resources:\n  a:\n    clients:\n    - {m: 0}\n    backend: x\n  # n\n  b: y\n",
            "resources:\n  a:\n    clients:\n    - {m: 0}\n    - {m: 1}\n    backend: x\n  # n\n"
            "  b: y\n",
        ),
        (  # the short form with no newline at the end of the file
            'resources:\n  a: "x"',
            'resources:\n  a:\n    backend: "x"\n    clients:\n      - {m: 1}\n',
        ),
    ],
)
def test_add_list_item(text: str, expected: str) -> None:
    assert add_list_item(text, "a", "clients", "{m: 1}") == expected


def test_add_list_item_to_an_unlisted_resource_is_a_conflict() -> None:
    with pytest.raises(EditConflict, match="resource 'z' is not listed"):
        add_list_item("resources:\n  a: x\n", "z", "clients", "{m: 1}")


# -- flips and rollbacks of nested keys ------------------------------------------------------


def test_flip_and_rollback_of_a_nested_key(routes: Path) -> None:
    change = edit.flip(routes, "tours/*/departures", "drf", user="ana", environ={})
    assert (change.from_backend, change.to_backend) == ("legacy", "drf")
    assert diff(ROUTES, routes.read_text()) == [
        "-     backend: legacy\n",
        "+     backend: drf\n",
    ]
    table = load_table(routes, environ={})
    assert table.match("GET", "/tours/3/departures").backend.name == "drf"
    edit.rollback(routes, "tours/*/departures", user="ana", environ={})
    assert routes.read_text() == ROUTES
    assert [line["resource"] for line in audit(routes)] == ["tours/*/departures"] * 2


def test_flip_of_an_unlisted_nested_key_adds_it_from_where_it_went(routes: Path) -> None:
    change = edit.flip(routes, "tours/*/reviews", "legacy", user="ana", environ={})
    assert (change.from_backend, change.to_backend) == ("drf", "legacy")  # it followed tours
    assert diff(ROUTES, routes.read_text()) == ["+   tours/*/reviews: legacy\n"]
    edit.rollback(routes, "tours/*/reviews", user="ana", environ={})
    assert load_table(routes, environ={}).match("GET", "/tours/1/reviews").backend.name == "drf"


def test_rollback_of_an_unlisted_nested_key_lists_it_on_default(routes: Path) -> None:
    """No flip on record: to `default`. The shape went to drf with tours, so the key is listed."""
    change = edit.rollback(routes, "tours/*/reviews", user="ana", environ={})
    assert (change.from_backend, change.to_backend) == ("drf", "legacy")
    assert diff(ROUTES, routes.read_text()) == ["+   tours/*/reviews: legacy\n"]


def test_backend_for_a_nested_key_not_listed() -> None:
    table = parse_table(ROUTES, environ={})
    assert table.backend_for("tours/*/departures") == "legacy"  # listed
    assert table.backend_for("tours/*/reviews") == "drf"  # with tours
    assert table.backend_for("tours/*/departures/*/x") == "legacy"  # below tours/*/departures
    assert table.backend_for("payments/*/x") == "legacy"  # nothing listed: default
