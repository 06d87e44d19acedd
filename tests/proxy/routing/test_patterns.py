"""proxy.routing.patterns and the nested keys of RouteTable.match: a parametrized table of
targets, the precedence of literal over `*` and of longer over shorter keys, the segments read
as `routing_key` reads the first, and a 90-resource table with 30 nested keys."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import itertools
import sys
from types import ModuleType

import pytest

from proxy import speedups
from proxy.routing.model import RouteTable, routing_key
from proxy.routing.parser import parse_table
from proxy.routing.patterns import build_trie, path_segments
from tests.support.routed import routes_yaml

BACKENDS = {"legacy": "http://127.0.0.1:5000", "drf": "http://127.0.0.1:8000"}
# The targets of test_model.test_routing_key: every form a request target takes.
ROUTING_KEY_TARGETS = [
    *("/bookings/7?x=1", "/bookings", "/bookings/", "/bookings?x=/tours", "/bookings#/tours"),
    *("/bookings?x=%2F", "/", "/?/bookings", "/book%69ngs/7", "/%62ookings", "/bookings%2F7"),
    *("/bookings%2f7", "/bookings%252F7", "/%2Fbookings/7", "//bookings/7", "///bookings"),
    *("/./bookings/7", "/%2e/bookings/7", "/../bookings/7", "/tours/../bookings/7"),
    *("/bookings;v=1/7", "/bookings%3B/7", "/\\bookings/7", "/%5Cbookings/7", "/%zz/7"),
    *("/%C3%A9t%C3%A9", "/BOOKINGS", "http://h/bookings/7", "HTTP://H/bookings/7"),
    *("https://h:8443/bookings/7?x=1", "ftp://h/bookings/7", "http://u:p@h/bookings%2F7"),
    *("http://[::1]:80/bookings", "http:///bookings", "http://h//bookings/7", "http://h"),
    *("http://h/%2Fbookings/7", "http://h?/bookings", "http://h#/bookings", "*"),
    *("http://h%2Fbookings/7", "Xbookings/7?a=://", "http:Xbookings/7?a=://", "h:443", ""),
    *("http:/bookings/7", "1x://h/bookings", "bookings/7", "/tours/3/departures?x=/y#z"),
]
NESTED = """\
  tours: legacy
  tours/*: drf
  tours/*/departures: drf
  tours/7/departures: legacy
  tours/*/departures/*/itinerary: legacy
  tours/search: legacy
  bookings: legacy
  departures/*/availability: drf
  itineraries/*/*/itinerary_maps: drf
"""


@pytest.fixture(scope="module")
def nested() -> RouteTable:
    return parse_table(routes_yaml(BACKENDS, "legacy", NESTED), environ={})


@pytest.mark.parametrize(
    ("target", "resource"),
    [
        ("/tours", "tours"),
        ("/tours/", "tours"),  # an empty segment is no id: `*` matches none
        ("/tours?page=2", "tours"),
        ("/tours/3", "tours/*"),
        ("/tours/3/", "tours/*"),
        ("/tours/3/departures", "tours/*/departures"),
        ("/tours/3/departures/", "tours/*/departures"),
        ("/tours/3/departures?page=2&x=/y", "tours/*/departures"),
        ("/tours/3/departures#frag", "tours/*/departures"),
        ("/tours/3/departures/9", "tours/*/departures"),  # and below it
        ("/tours/3/departures/9/itinerary", "tours/*/departures/*/itinerary"),
        ("/tours/3/departures/9/itinerary/1", "tours/*/departures/*/itinerary"),
        ("/tours/3/departures//itinerary", "tours/*/departures"),
        ("/tours/7/departures", "tours/7/departures"),  # literal beats `*`, same length
        ("/tours/7/departures/9/itinerary", "tours/*/departures/*/itinerary"),  # longer wins
        ("/tours/7", "tours/*"),
        ("/tours/search", "tours/search"),  # literal beats `*`
        ("/tours/search/departures", "tours/*/departures"),  # longer beats literal
        ("/tours//departures", "tours"),  # werkzeug merges the slashes: /tours/departures
        ("/tours%2F3%2Fdepartures", "tours/*/departures"),  # gunicorn decodes %2F
        ("/tours/3%2Fdepartures?x=1", "tours/*/departures"),
        ("/tours%2f7%2fdepartures", "tours/7/departures"),
        ("/tours/%37/departures", "tours/7/departures"),  # %37 is 7
        ("/tours/3/departures%3F/x", "tours/*"),  # a decoded ? is part of the segment
        ("/tours/3/depart%75res", "tours/*/departures"),
        ("/tours/3%252Fdepartures", "tours/*"),  # decoded once: the segment is 3%2Fdepartures
        ("http://api.example/tours/3/departures", "tours/*/departures"),
        ("https://u@h:8443/tours%2F7%2Fdepartures?x", "tours/7/departures"),
        ("/departures", "other"),  # only a nested key under departures: the rest falls through
        ("/departures/4", "other"),
        ("/departures/4/availability", "departures/*/availability"),
        ("/departures/4/availability/x", "departures/*/availability"),
        ("/itineraries/1/2/itinerary_maps", "itineraries/*/*/itinerary_maps"),
        ("/itineraries/1/itinerary_maps", "other"),
        ("/bookings/7/customers", "bookings"),
        ("/bookings%2F7", "bookings"),
        ("/nothing/3/departures", "other"),
        ("//tours/3/departures", "other"),
        ("*", "other"),
    ],
)
def test_nested_keys_route_by_shape(nested: RouteTable, target: str, resource: str) -> None:
    decision = nested.match("GET", target)
    assert decision.resource == resource
    assert nested.resource_label(target) == resource
    expected = nested.routes[resource].backend if resource in nested.routes else nested.default
    assert decision.backend.name == expected
    assert decision.refused is False


def test_a_target_without_a_key_is_refused_as_before(nested: RouteTable) -> None:
    decision = nested.match("GET", "tours/3/departures")
    assert (decision.resource, decision.refused) == ("other", True)


def test_per_method_overrides_of_a_nested_key() -> None:
    text = routes_yaml(
        BACKENDS,
        "legacy",
        "  tours: drf\n  tours/*/departures: {backend: legacy, methods: {POST: drf}}\n",
    )
    table = parse_table(text, environ={})
    assert table.match("POST", "/tours/1/departures").backend.name == "drf"
    assert table.match("GET", "/tours/1/departures").backend.name == "legacy"
    assert table.match("GET", "/tours/1").backend.name == "drf"


def test_a_table_without_nested_keys_matches_as_it_always_did() -> None:
    """`match` stays a one-lookup method until a table has nested keys: only then do its
    requests walk a trie (`_match_nested`). No instance attribute: the compiled `RouteTable`
    (proxy/speedups.py) has none to set."""
    plain = parse_table(routes_yaml(BACKENDS, "legacy", "  tours: drf\n"), environ={})
    assert not plain._nested
    nested = parse_table(routes_yaml(BACKENDS, "legacy", "  tours/*/x: drf\n"), environ={})
    assert nested._nested
    for path in ("/tours/1/x", "/tours/1", "/other"):
        assert nested.match("GET", path) == nested._match_nested("GET", path)


# -- precedence: every pair of distinct keys that can match one path is ordered ----------------


def keys_of(segments: int) -> list[str]:
    """Every key of `a` then up to `segments` further segments, each `b` or `*`."""
    keys = ["a"]
    for length in range(1, segments + 1):
        keys += ["/".join(("a", *parts)) for parts in itertools.product(("b", "*"), repeat=length)]
    return keys


def expected_winner(keys: list[str], segments: list[str]) -> str | None:
    """The rule, spelled out: among the keys matching, the longest; at equal length the one with
    a literal at the first position where they differ."""
    matching = [
        key
        for key in keys
        if len(key.split("/")) - 1 <= len(segments)
        and all(
            part == segment or (part == "*" and segment)
            for part, segment in zip(key.split("/")[1:], segments, strict=False)
        )
    ]
    if not matching:
        return None
    longest = max(len(key.split("/")) for key in matching)
    tied = [key.split("/") for key in matching if len(key.split("/")) == longest]
    return "/".join(min(tied, key=lambda parts: [part == "*" for part in parts]))


@pytest.mark.parametrize("subset", range(64))
def test_the_trie_applies_the_rule_to_every_path(subset: int) -> None:
    """For subsets of the keys over `a/{b,*}/{b,*}/{b,*}`, every path of up to 4 further segments
    (b, c or empty) gets exactly the key the rule names: no two keys are left unordered."""
    every = keys_of(3)
    chosen = [key for index, key in enumerate(every) if (subset * 2654435761 >> index) & 1]
    chosen = chosen or ["a/*"]
    trie = build_trie({key: key for key in chosen})
    for length in range(5):
        for segments in itertools.product(("b", "c", ""), repeat=length):
            assert trie.find(["a", *segments]) == expected_winner(chosen, list(segments)), segments


# -- the segments: the first is always routing_key's -------------------------------------------


@pytest.mark.parametrize("target", ROUTING_KEY_TARGETS)
def test_the_first_segment_is_the_routing_key(target: str) -> None:
    segments = path_segments(target)
    key = routing_key(target)
    assert (segments[0] if segments is not None else None) == key


@pytest.mark.parametrize(
    ("target", "segments"),
    [
        ("/a/b/c", ["a", "b", "c"]),
        ("/a/b/", ["a", "b", ""]),
        ("/a//b", ["a", "", "b"]),
        ("/a%2Fb%2fc", ["a", "b", "c"]),
        ("/a/b%252Fc", ["a", "b%2Fc"]),
        ("/a/b?c/d", ["a", "b"]),
        ("/a/b#c/d", ["a", "b"]),
        ("/a/b%3Fc/d", ["a", "b?c", "d"]),
        ("/a/%E2%82%AC", ["a", "€"]),
        ("/", [""]),
        ("http://h", [""]),
        ("http://h/a/b?x", ["a", "b"]),
        ("*", [""]),
        ("a/b", None),
    ],
)
def test_path_segments(target: str, segments: list[str] | None) -> None:
    assert path_segments(target) == segments


# -- a big table: 90 resources, 30 of them nested ----------------------------------------------


def big_table() -> RouteTable:
    """60 plain resources `r0`..`r59`, and 30 nested keys under the first ten of them."""
    lines = [f"  r{n}: {'drf' if n % 2 else 'legacy'}" for n in range(60)]
    for n in range(10):
        lines += [
            f"  r{n}/*/children: drf",
            f"  r{n}/*/children/*/grandchildren: legacy",
            f"  r{n}/search: drf",
        ]
    return parse_table(routes_yaml(BACKENDS, "legacy", "\n".join(lines) + "\n"), environ={})


@pytest.mark.parametrize(
    ("target", "resource"),
    [
        ("/r0", "r0"),
        ("/r0/1", "r0"),
        ("/r0/1/children", "r0/*/children"),
        ("/r9/1/children/2", "r9/*/children"),
        ("/r9/1/children/2/grandchildren?x=1", "r9/*/children/*/grandchildren"),
        ("/r3/search", "r3/search"),
        ("/r3/search/children", "r3/*/children"),
        ("/r3%2F5%2Fchildren", "r3/*/children"),
        ("/r10/1/children", "r10"),  # r10 has no nested keys: one lookup
        ("/r59", "r59"),
        ("/r60/1/children", "other"),
    ],
)
def test_a_90_resource_table_with_30_nested_keys(target: str, resource: str) -> None:
    table = big_table()
    assert len(table.routes) == 90
    assert sum("/" in name for name in table.routes) == 30
    assert table.match("GET", target).resource == resource


@pytest.mark.parametrize(
    "module",
    [
        "proxy.routing.patterns",
        "proxy.routing.clients",
        "proxy.routing.pin_edit",
        "proxy.routing.yamledit",
        "proxy.migration.pins",
        "proxy.migration.mismatches",
    ],
)
def test_the_docstring_examples_hold(module: str) -> None:
    failed, tried = doctest.testmod(from_source(module))
    assert (failed, tried > 0) == (0, True)


def from_source(module: str) -> ModuleType:
    """`module` as imported; a compiled hot-path module (proxy/speedups.py) run from its `.py`
    under another name, since doctest finds no docstrings in an extension module."""
    if module not in speedups.HOT_PATH:
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location(f"{module}_source", speedups.source_path(module))
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded  # dataclasses look their module up there
    try:
        spec.loader.exec_module(loaded)
    finally:
        del sys.modules[spec.name]
    return loaded
