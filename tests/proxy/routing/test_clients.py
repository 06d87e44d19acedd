"""proxy.routing.clients: a resource's pinned clients as the parser reads them, and every error
with its `file:line`; nested keys as resource names."""

from __future__ import annotations

import hashlib

import pytest

from proxy.routing.clients import pin_json
from proxy.routing.model import Pin, RoutesError
from proxy.routing.parser import parse_table

# Five lines; `resources:` goes on line 6, its first entry on line 7.
HEAD = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
"""
DIGEST = hashlib.sha256(b"key-of-broken-client").hexdigest()


def with_clients(*items: str) -> str:
    """bookings on drf with `items` as its clients: the first item is on line 10."""
    lines = "".join(f"      - {item}\n" for item in items)
    return HEAD + f"resources:\n  bookings:\n    backend: drf\n    clients:\n{lines}"


def test_pins_of_every_kind() -> None:
    table = parse_table(
        with_clients(
            '{match: "header:X-Application-Key", value: "key-of-broken-client", backend: legacy}',
            f'{{match: "cookie:session", value_sha256: "{DIGEST.upper()}", backend: legacy}}',
            '{match: client_ip, value: "10.0.0.0/8", backend: legacy}',
            '{match: client_ip, value: "2001:db8::7", backend: drf}',
        ),
        environ={},
    )
    assert table.routes["bookings"].clients == (
        Pin("header:X-Application-Key", "legacy", "key-of-broken-client"),
        Pin("cookie:session", "legacy", None, DIGEST),  # kept in lower case
        Pin("client_ip", "legacy", "10.0.0.0/8"),
        Pin("client_ip", "drf", "2001:db8::7"),
    )


def test_pins_in_block_style_and_on_a_nested_key() -> None:
    text = HEAD + (
        "resources:\n"
        "  tours/*/departures:\n"
        "    backend: drf\n"
        "    clients:\n"
        "    - match: header:X-Application-Key\n"
        "      value_sha256: " + DIGEST + "\n"
        "      backend: legacy\n"
    )
    route = parse_table(text, environ={}).routes["tours/*/departures"]
    assert route.clients == (Pin("header:X-Application-Key", "legacy", None, DIGEST),)


def test_a_resource_without_clients_has_none() -> None:
    table = parse_table(HEAD + "resources:\n  bookings: drf\n", environ={})
    assert table.routes["bookings"].clients == ()


def test_the_admin_api_shows_header_and_cookie_values_only_as_digests() -> None:
    assert pin_json(Pin("header:X-Key", "legacy", "key-of-broken-client")) == {
        "match": "header:X-Key",
        "value_sha256": DIGEST,
        "backend": "legacy",
    }
    assert pin_json(Pin("client_ip", "drf", "10.0.0.0/8")) == {
        "match": "client_ip",
        "value": "10.0.0.0/8",
        "backend": "drf",
    }


WHERE = "client 1 of resource 'bookings'"
MATCH_RULE = '"header:NAME", "cookie:NAME" or "client_ip"'


@pytest.mark.parametrize(
    ("items", "errors"),
    [
        pytest.param(
            ['{match: "query:x", value: "a", backend: legacy}'],
            [f"10: {WHERE}: match must be {MATCH_RULE}, got 'query:x'"],
            id="bad-match",
        ),
        pytest.param(
            ['{match: "header:X Y", value: "a", backend: legacy}'],
            [f"10: {WHERE}: match must be {MATCH_RULE}, got 'header:X Y'"],
            id="bad-header-name",
        ),
        pytest.param(
            ['{match: client_ip, value: "10.0.0.1/8", backend: legacy}'],
            [
                f"10: {WHERE}: value must be an IP address or a CIDR network like 10.0.0.0/8 "
                "(no host bits set), got '10.0.0.1/8'"
            ],
            id="cidr-host-bits",
        ),
        pytest.param(
            ['{match: client_ip, value: "10.0.0.0/33", backend: legacy}'],
            [
                f"10: {WHERE}: value must be an IP address or a CIDR network like 10.0.0.0/8 "
                "(no host bits set), got '10.0.0.0/33'"
            ],
            id="cidr-prefix",
        ),
        pytest.param(
            [f'{{match: client_ip, value_sha256: "{DIGEST}", backend: legacy}}'],
            [f"10: {WHERE}: client_ip takes value (an address or CIDR), not a hash"],
            id="client-ip-hashed",
        ),
        pytest.param(
            [f'{{match: "header:X", value: "a", value_sha256: "{DIGEST}", backend: legacy}}'],
            [f"10: {WHERE} has both value and value_sha256 (exactly one: value or value_sha256)"],
            id="both-values",
        ),
        pytest.param(
            ['{match: "header:X", backend: legacy}'],
            [f"10: {WHERE} needs a value (exactly one: value or value_sha256)"],
            id="no-value",
        ),
        pytest.param(
            ['{match: "header:X", value_sha256: "abc", backend: legacy}'],
            [f"10: {WHERE}: value_sha256 must be 64 hex digits, got 'abc'"],
            id="short-digest",
        ),
        pytest.param(
            ['{match: "header:X", value: 12345, backend: legacy}'],
            [f"10: {WHERE}: value must be a non-empty quoted string, got 12345"],
            id="unquoted-number",
        ),
        pytest.param(
            ['{match: "header:X", value: "a", backend: legacyy}'],
            [f"10: unknown backend 'legacyy' for {WHERE}"],
            id="unknown-backend",
        ),
        pytest.param(
            ['{match: "header:X", value: "a"}'],
            [f"10: {WHERE} is missing 'backend'"],
            id="no-backend",
        ),
        pytest.param(
            ['{match: "header:X", value: "a", backend: legacy, weight: 1}'],
            [
                f"10: unknown key 'weight' in {WHERE} "
                "(expected one of: backend, match, value, value_sha256)"
            ],
            id="unknown-key",
        ),
        pytest.param(
            ['"header:X"'],
            [f"10: {WHERE} must be a mapping, got 'header:X'"],
            id="not-a-mapping",
        ),
        pytest.param(
            [
                '{match: "header:X-Key", value: "key-of-broken-client", backend: legacy}',
                f'{{match: "header:x-key", value_sha256: "{DIGEST}", backend: drf}}',
            ],
            ["11: client 2 of resource 'bookings' pins the same client as client 1"],
            id="same-client-twice",
        ),
        pytest.param(
            [
                '{match: client_ip, value: "10.0.0.7", backend: legacy}',
                '{match: client_ip, value: "10.0.0.7/32", backend: legacy}',
            ],
            ["11: client 2 of resource 'bookings' pins the same client as client 1"],
            id="same-address-twice",
        ),
    ],
)
def test_invalid_clients(items: list[str], errors: list[str]) -> None:
    with pytest.raises(RoutesError) as caught:
        parse_table(with_clients(*items), environ={})
    assert list(caught.value.errors) == [f"routes.yaml:{error}" for error in errors]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "  bookings: {backend: drf, clients: {match: client_ip}}\n",
            "7: clients of resource 'bookings' must be a list of {match, value, backend}, "
            "got a mapping",
        ),
        (
            "  bookings: {backend: drf, clients: []}\n",
            "7: clients of resource 'bookings' must be a list of {match, value, backend}, "
            "got an empty list",
        ),
        ("  '*/departures': drf\n", "7: resource name '*/departures' is invalid"),
        ("  'tours//departures': drf\n", "7: resource name 'tours//departures' is invalid"),
        ("  'tours/*/': drf\n", "7: resource name 'tours/*/' is invalid"),
        ("  'tours/dep*': drf\n", "7: resource name 'tours/dep*' is invalid"),
        ("  'tours/**': drf\n", "7: resource name 'tours/**' is invalid"),
        (
            "  tours/*/departures: drf\n  'tours/*/departures': legacy\n",
            "8: duplicate resource 'tours/*/departures' in resources (first on line 7)",
        ),
    ],
)
def test_invalid_entries(body: str, error: str) -> None:
    with pytest.raises(RoutesError) as caught:
        parse_table(HEAD + "resources:\n" + body, environ={})
    assert list(caught.value.errors) == [f"routes.yaml:{error}"]


@pytest.mark.parametrize("name", ["tours/*", "tours/*/departures", "tours/search", "a/*/*/b"])
def test_nested_keys_are_resource_names(name: str) -> None:
    table = parse_table(HEAD + f"resources:\n  {name}: drf\n", environ={})
    assert table.routes[name].resource == name
