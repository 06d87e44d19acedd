"""proxy.routing.groups: `groups:` of routes.yaml, valid and invalid (exact `file:line: …`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.routing.groups import group_of
from proxy.routing.model import RoutesError
from proxy.routing.parser import load_table, parse_table

# resources on lines 7-10, `groups:` on line 11, its first group on line 12.
HEAD = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
resources:
  bookings: legacy
  customers: legacy
  tours: drf
  departures: {backend: legacy}
groups:
"""
LIST = "group 'a' must be a list of resources"


def errors(body: str) -> list[str]:
    with pytest.raises(RoutesError) as caught:
        parse_table(HEAD + body, environ={})
    return list(caught.value.errors)


def test_groups_parse_in_order() -> None:
    table = parse_table(
        HEAD + "  reservations: [bookings, customers]\n  catalogue:\n    - tours\n"
        "    - departures\n",
        environ={},
    )
    assert dict(table.groups) == {
        "reservations": ("bookings", "customers"),
        "catalogue": ("tours", "departures"),
    }
    assert [group_of(table, name) for name in ("bookings", "departures", "nope")] == [
        "reservations", "catalogue", None
    ]  # fmt: skip


@pytest.mark.parametrize("body", ["", "  {}\n"])
def test_empty_groups(body: str) -> None:
    text = HEAD + body if body != "  {}\n" else HEAD.replace("groups:\n", "groups: {}\n")
    assert dict(parse_table(text, environ={}).groups) == {}


def test_no_groups_key() -> None:
    assert dict(parse_table(HEAD.replace("groups:\n", ""), environ={}).groups) == {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  reservations: [bookings, bokings]\n",
         ["routes.yaml:12: group 'reservations': unknown resource 'bokings' "
          "(not under resources:)"]),
        ("  a: [bookings]\n  b:\n    - customers\n    - bookings\n",
         ["routes.yaml:15: resource 'bookings' is in groups 'a' and 'b' "
          "(a resource is in one group at most)"]),
        ("  tours: [bookings]\n",
         ["routes.yaml:12: group name 'tours' is also a resource's name "
          "(group and resource names must differ)"]),
        ("  other: [bookings]\n",
         ["routes.yaml:12: group name 'other' is reserved for unlisted resources"]),
        ("  'two words': [bookings]\n",
         ["routes.yaml:12: invalid group name 'two words' (letters, digits, _ and -)"]),
        ("  a: bookings\n", [f"routes.yaml:12: {LIST}, got 'bookings'"]),
        ("  a: []\n", [f"routes.yaml:12: {LIST}, got an empty list"]),
        ("  a: {bookings: 1}\n", [f"routes.yaml:12: {LIST}, got a mapping"]),
        ("  a: [bookings, bookings]\n",
         ["routes.yaml:12: group 'a': resource 'bookings' is listed twice"]),
        ("  a: [bookings, 3, [x]]\n",
         ["routes.yaml:12: group 'a': member 3 is not a resource name",
          "routes.yaml:12: group 'a': member a list is not a resource name"]),
        ("  a: [bookings]\n  a: [customers]\n",
         ["routes.yaml:13: duplicate group 'a' in groups (first on line 12)"]),
    ],
)  # fmt: skip
def test_invalid_groups(body: str, expected: list[str]) -> None:
    assert errors(body) == expected


def test_groups_must_be_a_mapping() -> None:
    text = HEAD.replace("groups:\n", "groups: [bookings]\n")
    with pytest.raises(RoutesError) as caught:
        parse_table(text, environ={})
    assert caught.value.errors == ("routes.yaml:11: groups must be a mapping, got a list",)


def test_a_bad_resource_is_not_reported_again_as_an_unknown_member() -> None:
    text = HEAD.replace("  tours: drf\n", "  tours: drff\n") + "  a: [tours]\n"
    with pytest.raises(RoutesError) as caught:
        parse_table(text, environ={})
    assert caught.value.errors == ("routes.yaml:9: unknown backend 'drff' for resource 'tours'",)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(HEAD + "  a: [bookings, nope]\n  b: [bookings]\n")
    with pytest.raises(RoutesError) as caught:
        load_table(path, environ={})
    assert caught.value.errors == (
        f"{path}:12: group 'a': unknown resource 'nope' (not under resources:)",
        f"{path}:13: resource 'bookings' is in groups 'a' and 'b' "
        "(a resource is in one group at most)",
    )
