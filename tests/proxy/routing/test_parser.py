"""proxy.routing.parser: parsing, validation (every error, exact `file:line: message`), files,
the environment override and the TLS block."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from proxy.routing.model import (
    Backend,
    Canary,
    Fallback,
    Guard,
    RoutesError,
    RouteTable,
    Shadow,
    TlsOptions,
)
from proxy.routing.parser import load_table, parse_table
from tests.proxy.routing.conftest import DESIGN_EXAMPLE

# Five lines; `resources:` goes on line 6, its first entry on line 7.
HEAD = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
"""


def with_resources(body: str) -> str:
    return HEAD + "resources:\n" + body


def test_shadow_writes_and_learned_noise_options() -> None:
    text = with_resources(
        "  tours:\n    backend: drf\n    shadow:\n      backend: legacy\n"
        "      writes: dry-run\n      learn_noise: 0.05\n      noise_after: 5\n"
        "  bookings: {backend: drf, shadow: {backend: legacy, writes: off}}\n"
    )
    parsed = parse_table(text, environ={})
    assert parsed.routes["tours"].shadow == Shadow("legacy", 100.0, (), 0.05, 5, True)
    shadow = parsed.routes["bookings"].shadow
    assert shadow is not None and shadow.writes is False  # YAML's bare off is false: off


def test_design_example_parses_whole(table: RouteTable) -> None:
    assert table.version == 1
    assert table.default == "legacy"
    assert table.backends["legacy"] == Backend(
        "legacy", "http://127.0.0.1:5000", "http", "127.0.0.1", 5000, 2.0, 30.0, 100
    )
    route = table.routes["itineraries"]
    assert dict(route.methods) == {"GET": "drf"}
    assert route.canary == Canary("drf", 10.0, "header:X-Application-Key")
    assert route.shadow == Shadow("drf", 100.0, ("$.meta.generated_at",))
    assert route.fallback == Fallback("legacy", frozenset({404, 405, 501}))
    assert route.guard == Guard(0.05, None, 50, 60.0, False)
    assert table.routes["bookings"].canary is None
    assert table.sha256 == hashlib.sha256(DESIGN_EXAMPLE.encode()).hexdigest()


def test_defaults_and_full_options() -> None:
    text = with_resources(
        "  tours:\n"
        "    backend: drf\n"
        "    canary: {backend: legacy, percent: 0.5, sticky: client_ip}\n"
        "    shadow: {backend: legacy}\n"
        "    guard: {max_p99_ms: 250, dry_run: true}\n"
    ).replace('"http://127.0.0.1:8000"', '"https://drf.internal/", max_connections: 7')
    parsed = parse_table(text, environ={})
    assert parsed.backends["drf"] == Backend(
        "drf", "https://drf.internal", "https", "drf.internal", 443, 2.0, 30.0, 7
    )
    assert parsed.backends["drf"].tls == TlsOptions()  # verified with the system CAs
    assert parsed.backends["legacy"].tls is None
    route = parsed.routes["tours"]
    assert route.canary == Canary("legacy", 0.5, "client_ip")
    assert route.shadow == Shadow("legacy", 100.0, ())
    assert (route.shadow.writes, route.shadow.learn_noise, route.shadow.noise_after) == (
        False,
        0.0,
        3,
    )
    assert route.guard == Guard(None, 250.0, 20, 60.0, True)


def test_empty_resources_are_allowed() -> None:
    assert dict(parse_table(HEAD + "resources:\n", environ={}).routes) == {}
    assert dict(parse_table(HEAD + "resources: {}\n", environ={}).routes) == {}
    assert dict(parse_table(HEAD, environ={}).routes) == {}


# -- environment override ------------------------------------------------------------------------


def test_env_overrides_backend_url() -> None:
    environ = {"STRANGLER_BACKEND_DRF_URL": "http://drf:9000"}
    parsed = parse_table(HEAD, environ=environ)
    assert parsed.backends["drf"].url == "http://drf:9000"
    assert (parsed.backends["drf"].host, parsed.backends["drf"].port) == ("drf", 9000)
    assert parsed.backends["legacy"].url == "http://127.0.0.1:5000"


def test_env_override_name_with_dash() -> None:
    text = HEAD.replace("  drf:", "  drf-v2:").replace("default: legacy", "default: drf-v2")
    parsed = parse_table(text, environ={"STRANGLER_BACKEND_DRF_V2_URL": "http://h:1"})
    assert parsed.backends["drf-v2"].url == "http://h:1"


def test_env_override_is_validated() -> None:
    with pytest.raises(RoutesError) as caught:
        parse_table(HEAD, environ={"STRANGLER_BACKEND_LEGACY_URL": "legacy:5000"})
    assert caught.value.errors == (
        "routes.yaml:3: backend 'legacy': url (from STRANGLER_BACKEND_LEGACY_URL) must be "
        "http(s)://host:port, got 'legacy:5000'",
    )


def test_env_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_BACKEND_LEGACY_URL", "http://10.0.0.1:5000")
    assert parse_table(HEAD).backends["legacy"].url == "http://10.0.0.1:5000"


# -- validation: every error, exact text -----------------------------------------------------------

KEYS = "expected one of: backends, default, groups, max_in_flight, resources, version"
BACKEND_KEYS = "expected one of: connect_timeout, max_connections, read_timeout, tls, url"
ROUTE_KEYS = "expected one of: backend, canary, clients, fallback, guard, methods, rollout, shadow"
METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
STICKY = '"header:NAME", "cookie:NAME" or "client_ip"'
URL = "must be http(s)://host:port"
JSONPATH = "a JSONPath like $.a.b or $.a[*].b"

INVALID = [
    pytest.param(
        "version: 1\nbackends: [\n",
        ["3: invalid YAML: expected the node content, but found '<stream end>'"],
        id="yaml-syntax",
    ),
    pytest.param(
        "version: 1\n  backends: {}\n",
        ["2: invalid YAML: mapping values are not allowed here"],
        id="yaml-indent",
    ),
    pytest.param(
        "",
        ["1: expected a mapping with version, backends, default, resources, got an empty file"],
        id="empty",
    ),
    pytest.param(
        "- a\n- b\n",
        ["1: expected a mapping with version, backends, default, resources, got a list"],
        id="top-list",
    ),
    pytest.param(
        "just text\n",
        ["1: expected a mapping with version, backends, default, resources, got 'just text'"],
        id="top-scalar",
    ),
    pytest.param(
        "resources: {}\n",
        [
            "1: missing required key 'version'",
            "1: missing required key 'backends'",
            "1: missing required key 'default'",
        ],
        id="missing-keys",
    ),
    pytest.param(
        HEAD.replace("version: 1", "version: 2"), ["1: version must be 1, got 2"], id="version-2"
    ),
    pytest.param(
        HEAD.replace("version: 1", "version: '1'"),
        ["1: version must be 1, got '1'"],
        id="version-string",
    ),
    pytest.param(
        HEAD.replace("version: 1", "version: true"),
        ["1: version must be 1, got True"],
        id="version-bool",
    ),
    pytest.param(
        HEAD + "routes: {}\n",
        [f"6: unknown key 'routes' in the top-level mapping ({KEYS})"],
        id="unknown-top-key",
    ),
    pytest.param(
        HEAD + "default: drf\n",
        ["6: duplicate key 'default' in the top-level mapping (first on line 5)"],
        id="duplicate-top-key",
    ),
    pytest.param(
        "version: 1\nbackends: [a]\ndefault: a\n",
        ["2: backends must be a mapping, got a list"],
        id="backends-list",
    ),
    pytest.param(
        "version: 1\nbackends: {}\ndefault: a\n",
        ["2: backends must define at least one backend", "3: unknown backend 'a' for default"],
        id="backends-empty",
    ),
    pytest.param(
        HEAD.replace("  drf: {", "  legacy: {"),
        ["4: duplicate backend 'legacy' in backends (first on line 3)"],
        id="duplicate-backend",
    ),
    pytest.param(
        HEAD.replace("  drf:", "  'd r f':"),
        ["4: invalid backend name 'd r f' (letters, digits, _ and -)"],
        id="backend-name",
    ),
    pytest.param(
        HEAD.replace('{url: "http://127.0.0.1:8000"}', '"http://127.0.0.1:8000"'),
        ["4: backend 'drf' must be a mapping, got 'http://127.0.0.1:8000'"],
        id="backend-not-mapping",
    ),
    pytest.param(
        HEAD.replace('{url: "http://127.0.0.1:8000"}', "{read_timeout: 3}"),
        ["4: backend 'drf' is missing 'url'"],
        id="backend-no-url",
    ),
    pytest.param(
        HEAD.replace('8000"}', '8000", timeout: 3}'),
        [f"4: unknown key 'timeout' in backend 'drf' ({BACKEND_KEYS})"],
        id="backend-unknown-key",
    ),
    pytest.param(
        HEAD.replace("http://127.0.0.1:8000", "ftp://127.0.0.1:8000"),
        [f"4: backend 'drf': url {URL}, got 'ftp://127.0.0.1:8000'"],
        id="url-scheme",
    ),
    pytest.param(
        HEAD.replace("http://127.0.0.1:8000", "127.0.0.1:8000"),
        [f"4: backend 'drf': url {URL}, got '127.0.0.1:8000'"],
        id="url-no-scheme",
    ),
    pytest.param(
        HEAD.replace("http://127.0.0.1:8000", "http://127.0.0.1:8000/api"),
        [f"4: backend 'drf': url {URL}, got 'http://127.0.0.1:8000/api'"],
        id="url-path",
    ),
    pytest.param(
        HEAD.replace("http://127.0.0.1:8000", "http://127.0.0.1:99999"),
        [f"4: backend 'drf': url {URL}, got 'http://127.0.0.1:99999'"],
        id="url-port",
    ),
    pytest.param(
        HEAD.replace("http://127.0.0.1:8000", "http://:8000"),
        [f"4: backend 'drf': url {URL}, got 'http://:8000'"],
        id="url-no-host",
    ),
    pytest.param(
        HEAD.replace("http://127.0.0.1:8000", "http://u:p@h:1"),
        [f"4: backend 'drf': url {URL}, got 'http://u:p@h:1'"],
        id="url-userinfo",
    ),
    pytest.param(
        HEAD.replace('"http://127.0.0.1:8000"', "8000"),
        [f"4: backend 'drf': url {URL}, got 8000"],
        id="url-number",
    ),
    pytest.param(
        HEAD.replace('8000"}', '8000", connect_timeout: 0}'),
        ["4: backend 'drf': connect_timeout must be a number > 0, got 0"],
        id="connect-timeout-zero",
    ),
    pytest.param(
        HEAD.replace('8000"}', '8000", read_timeout: soon}'),
        ["4: backend 'drf': read_timeout must be a number > 0, got 'soon'"],
        id="read-timeout-text",
    ),
    pytest.param(
        HEAD.replace('8000"}', '8000", read_timeout: true}'),
        ["4: backend 'drf': read_timeout must be a number > 0, got True"],
        id="read-timeout-bool",
    ),
    pytest.param(
        HEAD.replace('8000"}', '8000", max_connections: 0}'),
        ["4: backend 'drf': max_connections must be an integer >= 1, got 0"],
        id="max-connections-zero",
    ),
    pytest.param(
        HEAD.replace('8000"}', '8000", max_connections: 2.5}'),
        ["4: backend 'drf': max_connections must be an integer >= 1, got 2.5"],
        id="max-connections-float",
    ),
    pytest.param(
        HEAD.replace("default: legacy", "default: drff"),
        ["5: unknown backend 'drff' for default"],
        id="default-unknown",
    ),
    pytest.param(
        HEAD.replace("default: legacy", "default: [legacy]"),
        ["5: backend for default must be a backend name, got a list"],
        id="default-list",
    ),
    pytest.param(
        HEAD + "resources: [bookings]\n",
        ["6: resources must be a mapping, got a list"],
        id="resources-list",
    ),
    pytest.param(
        with_resources("  bookings: drff\n"),
        ["7: unknown backend 'drff' for resource 'bookings'"],
        id="resource-unknown-backend",
    ),
    pytest.param(
        with_resources("  bookings: drf\n  customers: legacy\n  bookings: legacy\n"),
        ["9: duplicate resource 'bookings' in resources (first on line 7)"],
        id="duplicate-resource",
    ),
    pytest.param(
        with_resources("  bookings: [drf]\n"),
        ["7: resource 'bookings' must be a backend name or a mapping, got a list"],
        id="resource-list",
    ),
    pytest.param(
        with_resources("  bookings: 3\n"),
        ["7: backend for resource 'bookings' must be a backend name, got 3"],
        id="resource-number",
    ),
    pytest.param(
        with_resources("  bookings:\n"),
        ["7: backend for resource 'bookings' must be a backend name, got nothing"],
        id="resource-empty",
    ),
    pytest.param(
        with_resources("  'a//b': drf\n"),
        ["7: resource name 'a//b' is invalid"],
        id="resource-name",
    ),
    pytest.param(
        with_resources("  other: drf\n"),
        ["7: resource name 'other' is reserved for unlisted resources"],
        id="resource-other",
    ),
    pytest.param(
        with_resources("  [a, b]: drf\n"),
        ["7: keys of resources must be plain names"],
        id="resource-key-list",
    ),
    pytest.param(
        with_resources("  tours:\n    methods: {GET: drf}\n"),
        ["7: resource 'tours' is missing 'backend'"],
        id="long-no-backend",
    ),
    pytest.param(
        with_resources("  tours:\n    backend: drf\n    weight: 3\n"),
        [f"9: unknown key 'weight' in resource 'tours' ({ROUTE_KEYS})"],
        id="long-unknown-key",
    ),
    pytest.param(
        with_resources("  tours:\n    backend: drf\n    backend: legacy\n"),
        ["9: duplicate key 'backend' in resource 'tours' (first on line 8)"],
        id="long-duplicate-key",
    ),
    pytest.param(
        with_resources("  tours:\n    backend: drff\n"),
        ["8: unknown backend 'drff' for resource 'tours'"],
        id="long-unknown-backend",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, methods: [GET]}\n"),
        ["7: methods of resource 'tours' must be a mapping, got a list"],
        id="methods-list",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, methods: {FETCH: drf}}\n"),
        [f"7: unknown method 'FETCH' in methods of resource 'tours' ({METHODS})"],
        id="methods-unknown",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, methods: {get: drf}}\n"),
        [f"7: unknown method 'get' in methods of resource 'tours' ({METHODS})"],
        id="methods-lowercase",
    ),
    pytest.param(
        with_resources(
            "  tours:\n    backend: drf\n    methods:\n      GET: legacy\n      POST: nope\n"
        ),
        ["11: unknown backend 'nope' for resource 'tours' method POST"],
        id="methods-unknown-backend",
    ),
    pytest.param(
        with_resources(
            "  tours:\n    backend: drf\n    methods:\n      GET: legacy\n      GET: drf\n"
        ),
        ["11: duplicate method 'GET' in methods of resource 'tours' (first on line 10)"],
        id="methods-duplicate",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, canary: 10}\n"),
        ["7: canary of resource 'tours' must be a mapping, got 10"],
        id="canary-scalar",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, canary: {backend: legacy}}\n"),
        ["7: canary of resource 'tours' is missing 'percent'"],
        id="canary-no-percent",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, canary: {backend: nope, percent: 5}}\n"),
        ["7: unknown backend 'nope' for canary of resource 'tours'"],
        id="canary-unknown-backend",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, canary: {backend: legacy, percent: 150}}\n"),
        ["7: canary of resource 'tours': percent must be a number from 0 to 100, got 150"],
        id="canary-percent-high",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, canary: {backend: legacy, percent: -1}}\n"),
        ["7: canary of resource 'tours': percent must be a number from 0 to 100, got -1"],
        id="canary-percent-negative",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, canary: {backend: legacy, percent: 10%}}\n"),
        ["7: canary of resource 'tours': percent must be a number from 0 to 100, got '10%'"],
        id="canary-percent-text",
    ),
    pytest.param(
        with_resources(
            "  tours: {backend: drf, canary: {backend: legacy, percent: 5, sticky: ip}}\n"
        ),
        [f"7: canary of resource 'tours': sticky must be {STICKY}, got 'ip'"],
        id="canary-sticky",
    ),
    pytest.param(
        with_resources(
            "  tours: {backend: drf, canary: {backend: legacy, percent: 5, sticky: 'header:'}}\n"
        ),
        [f"7: canary of resource 'tours': sticky must be {STICKY}, got 'header:'"],
        id="canary-sticky-empty-name",
    ),
    pytest.param(
        with_resources(
            "  tours: {backend: drf, canary: {backend: legacy, percent: 5, stick: client_ip}}\n"
        ),
        [
            "7: unknown key 'stick' in canary of resource 'tours' "
            "(expected one of: backend, percent, sticky)"
        ],
        id="canary-unknown-key",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, shadow: {percent: 5}}\n"),
        ["7: shadow of resource 'tours' is missing 'backend'"],
        id="shadow-no-backend",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, shadow: {backend: legacy, percent: 101}}\n"),
        ["7: shadow of resource 'tours': percent must be a number from 0 to 100, got 101"],
        id="shadow-percent",
    ),
    pytest.param(
        with_resources(
            "  tours: {backend: drf, shadow: {backend: legacy, writes: yes, learn_noise: 5,"
            " noise_after: 0}}\n"
        ),
        [
            "7: shadow of resource 'tours': learn_noise must be a number from 0 to 1, got 5",
            "7: shadow of resource 'tours': noise_after must be an integer >= 1, got 0",
            "7: shadow of resource 'tours': writes must be off or dry-run, got True",
        ],
        id="shadow-writes-and-noise",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, shadow: {backend: legacy, ignore: $.a}}\n"),
        ["7: shadow of resource 'tours': ignore must be a list, got '$.a'"],
        id="shadow-ignore-scalar",
    ),
    pytest.param(
        with_resources(
            "  tours:\n    backend: drf\n    shadow:\n      backend: legacy\n      ignore:\n"
            "        - $.results[*].href\n        - meta.x\n        - $.a..b\n"
        ),
        [
            f"13: shadow of resource 'tours': ignore item 'meta.x' is not {JSONPATH}",
            f"14: shadow of resource 'tours': ignore item '$.a..b' is not {JSONPATH}",
        ],
        id="shadow-ignore-paths",
    ),
    pytest.param(
        with_resources(
            "  tours:\n    backend: drf\n    shadow:\n      backend: legacy\n      ignore:\n"
            "        - $\n        - $[0].a_b-c[12][*]\n        - $.a[x]\n        - $[-1]\n"
            "        - $.a.\n        - '$.a b'\n        - $['a']\n"
        ),
        [
            f"14: shadow of resource 'tours': ignore item '$.a[x]' is not {JSONPATH}",
            f"15: shadow of resource 'tours': ignore item '$[-1]' is not {JSONPATH}",
            f"16: shadow of resource 'tours': ignore item '$.a.' is not {JSONPATH}",
            f"17: shadow of resource 'tours': ignore item '$.a b' is not {JSONPATH}",
            f"18: shadow of resource 'tours': ignore item \"$['a']\" is not {JSONPATH}",
        ],
        id="shadow-ignore-outside-the-subset",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, fallback: {backend: legacy}}\n"),
        ["7: fallback of resource 'tours' is missing 'on'"],
        id="fallback-no-on",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, fallback: {backend: legacy, on: []}}\n"),
        ["7: fallback of resource 'tours': on must be a list, got an empty list"],
        id="fallback-on-empty",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, fallback: {backend: legacy, on: 404}}\n"),
        ["7: fallback of resource 'tours': on must be a list, got 404"],
        id="fallback-on-scalar",
    ),
    pytest.param(
        with_resources(
            "  tours: {backend: drf, fallback: {backend: legacy, on: [404, 200, 600, x]}}\n"
        ),
        [
            "7: fallback of resource 'tours': on item 200 is not a status code from 400 to 599",
            "7: fallback of resource 'tours': on item 600 is not a status code from 400 to 599",
            "7: fallback of resource 'tours': on item 'x' is not a status code from 400 to 599",
        ],
        id="fallback-codes",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, fallback: {backend: nope, on: [404]}}\n"),
        ["7: unknown backend 'nope' for fallback of resource 'tours'"],
        id="fallback-unknown-backend",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {window: 10}}\n"),
        ["7: guard of resource 'tours' needs max_error_rate or max_p99_ms"],
        id="guard-no-limit",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {max_error_rate: 1.5}}\n"),
        ["7: guard of resource 'tours': max_error_rate must be a number from 0 to 1, got 1.5"],
        id="guard-rate",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {max_p99_ms: 0}}\n"),
        ["7: guard of resource 'tours': max_p99_ms must be a number > 0, got 0"],
        id="guard-p99",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {max_p99_ms: 5, min_requests: 0}}\n"),
        ["7: guard of resource 'tours': min_requests must be an integer >= 1, got 0"],
        id="guard-min-requests",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {max_p99_ms: 5, window: -60}}\n"),
        ["7: guard of resource 'tours': window must be a number of seconds > 0, got -60"],
        id="guard-window",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {max_p99_ms: 5, dry_run: maybe}}\n"),
        ["7: guard of resource 'tours': dry_run must be true or false, got 'maybe'"],
        id="guard-dry-run",
    ),
    pytest.param(
        with_resources("  tours: {backend: drf, guard: {max_p99_ms: 5, rollback: true}}\n"),
        [
            "7: unknown key 'rollback' in guard of resource 'tours' "
            "(expected one of: dry_run, max_error_rate, max_p99_ms, min_requests, window)"
        ],
        id="guard-unknown-key",
    ),
]


@pytest.mark.parametrize(("text", "errors"), INVALID)
def test_invalid(text: str, errors: list[str]) -> None:
    with pytest.raises(RoutesError) as caught:
        parse_table(text, "routes.yaml", environ={})
    assert list(caught.value.errors) == [f"routes.yaml:{error}" for error in errors]
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_all_errors_are_collected_in_line_order() -> None:
    text = """\
version: 2
backends:
  legacy: {url: "ftp://x"}
  drf: {url: "http://127.0.0.1:8000", read_timeout: 0}
default: legacy
resources:
  bookings: drff
  bookings: drf
  tours: {backend: drf, canary: {backend: legacy, percent: 200}}
colour: blue
"""
    with pytest.raises(RoutesError) as caught:
        parse_table(text, "deploy/routes.yaml", environ={})
    assert caught.value.errors == (
        "deploy/routes.yaml:1: version must be 1, got 2",
        f"deploy/routes.yaml:3: backend 'legacy': url {URL}, got 'ftp://x'",
        "deploy/routes.yaml:4: backend 'drf': read_timeout must be a number > 0, got 0",
        "deploy/routes.yaml:7: unknown backend 'drff' for resource 'bookings'",
        "deploy/routes.yaml:8: duplicate resource 'bookings' in resources (first on line 7)",
        "deploy/routes.yaml:9: canary of resource 'tours': percent must be a number from 0 to "
        "100, got 200",
        f"deploy/routes.yaml:10: unknown key 'colour' in the top-level mapping ({KEYS})",
    )


def test_invalid_backend_is_not_reported_again_as_unknown() -> None:
    text = HEAD.replace("http://127.0.0.1:8000", "nope") + "resources:\n  bookings: drf\n"
    with pytest.raises(RoutesError) as caught:
        parse_table(text, environ={})
    assert caught.value.errors == (f"routes.yaml:4: backend 'drf': url {URL}, got 'nope'",)


# -- files ---------------------------------------------------------------------------------------


def test_load_table_hashes_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_bytes(DESIGN_EXAMPLE.encode())
    loaded = load_table(path, environ={})
    assert loaded.source == str(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutesError) as caught:
        load_table(tmp_path / "nope.yaml")
    assert caught.value.errors == (f"{tmp_path}/nope.yaml: cannot read: No such file or directory",)


def test_load_table_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_bytes(HEAD.encode() + b"resources:\n  caf\xe9: drf\n")
    with pytest.raises(RoutesError) as caught:
        load_table(path)
    assert caught.value.errors == (f"{path}:7: not UTF-8 text",)


def test_repository_routes_yaml_is_valid() -> None:
    root = Path(__file__).resolve().parents[3]
    loaded = load_table(root / "routes.yaml", environ={})
    assert loaded.default == "legacy"
    assert {name: backend.url for name, backend in loaded.backends.items()} == {
        "legacy": "http://127.0.0.1:5000",
        "drf": "http://127.0.0.1:8000",
    }
    assert {name: route.backend for name, route in loaded.routes.items()} == {
        name: "legacy"
        for name in ("bookings", "customers", "departures", "tours", "itineraries",
                     "itinerary_maps", "accommodations")
    }  # fmt: skip


# -- tls -----------------------------------------------------------------------------------------

TLS_KEYS = "expected one of: ca_file, client_cert, client_key, server_name, verify"


def tls_table(*lines: str, url: str = "https://api.internal") -> str:
    """HEAD with backend drf at `url`, its `tls:` on line 6 and `lines` from line 7 on."""
    block = "".join(f"      {line}\n" for line in lines)
    drf = f"  drf:\n    url: {url}\n    tls:\n{block}"
    return HEAD.replace('  drf: {url: "http://127.0.0.1:8000"}\n', drf)


@dataclasses.dataclass(frozen=True)
class Pems:
    ca: Path
    cert: Path
    key: Path
    other_key: Path
    encrypted_key: Path
    garbage: Path


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> Pems:
    folder = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    leaf = ca.issue_cert("proxy.client")
    pems = Pems(*(folder / name for name in ("ca", "cert", "key", "other", "encrypted", "junk")))
    ca.cert_pem.write_to_path(str(pems.ca))
    leaf.cert_chain_pems[0].write_to_path(str(pems.cert))
    leaf.private_key_pem.write_to_path(str(pems.key))
    ca.issue_cert("other").private_key_pem.write_to_path(str(pems.other_key))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    encryption = serialization.BestAvailableEncryption(b"secret")
    pems.encrypted_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    pems.garbage.write_text("not a certificate\n")
    return pems


def test_tls_options_parsed(pems: Pems) -> None:
    text = tls_table(
        f"ca_file: {pems.ca}",
        "verify: false",
        "server_name: api.internal",
        f"client_cert: {pems.cert}",
        f"client_key: {pems.key}",
        url="https://10.0.0.7",
    )
    drf = parse_table(text, environ={}).backends["drf"]
    assert (drf.scheme, drf.host, drf.port) == ("https", "10.0.0.7", 443)
    assert drf.tls == TlsOptions(str(pems.ca), False, "api.internal", str(pems.cert), str(pems.key))


def test_tls_client_cert_may_hold_its_key(tmp_path: Path, pems: Pems) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(pems.key.read_bytes() + pems.cert.read_bytes())
    drf = parse_table(tls_table(f"client_cert: {both}"), environ={}).backends["drf"]
    assert drf.tls == TlsOptions(client_cert=str(both))


def test_tls_relative_paths_follow_the_routes_file(tmp_path: Path, pems: Pems) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(pems.ca.read_bytes())
    routes = tmp_path / "routes.yaml"
    routes.write_text(tls_table("ca_file: certs/ca.pem"))
    drf = load_table(routes, environ={}).backends["drf"]
    assert drf.tls == TlsOptions(ca_file=str(tmp_path / "certs" / "ca.pem"))


def test_tls_empty_block_is_the_defaults() -> None:
    text = HEAD.replace('"http://127.0.0.1:8000"}', '"https://api.internal:8443", tls: {}}')
    drf = parse_table(text, environ={}).backends["drf"]
    assert (drf.port, drf.tls) == (8443, TlsOptions())


TLS_INVALID = [
    pytest.param(
        ("cafile: /etc/ssl/ca.pem",),
        [f"7: unknown key 'cafile' in tls of backend 'drf' ({TLS_KEYS})"],
        id="unknown-key",
    ),
    pytest.param(
        ("verify: 'no'",),
        ["7: tls of backend 'drf': verify must be true or false, got 'no'"],
        id="verify-string",
    ),
    pytest.param(
        ("ca_file: 5", "client_cert: ''"),
        [
            "7: tls of backend 'drf': ca_file must be a file path, got 5",
            "8: tls of backend 'drf': client_cert must be a file path, got ''",
        ],
        id="path-types",
    ),
    pytest.param(
        ("server_name: api internal",),
        ["7: tls of backend 'drf': server_name must be a host name, got 'api internal'"],
        id="server-name",
    ),
    pytest.param(
        ("ca_file: /nonexistent/ca.pem", "client_cert: /"),
        [
            "7: tls of backend 'drf': cannot read ca_file '/nonexistent/ca.pem': "
            "No such file or directory",
            "8: tls of backend 'drf': cannot read client_cert '/': Is a directory",
        ],
        id="unreadable",
    ),
    pytest.param(
        ("client_key: {key}",),
        ["7: tls of backend 'drf': client_key needs client_cert"],
        id="key-without-cert",
    ),
    pytest.param(
        ("ca_file: {garbage}",),
        ["7: tls of backend 'drf': ca_file holds no PEM certificate"],
        id="ca-not-pem",
    ),
    pytest.param(
        ("client_cert: {cert}", "client_key: {other_key}"),
        [
            "7: tls of backend 'drf': client_cert and client_key must be a PEM certificate and "
            "its key (unencrypted)"
        ],
        id="key-mismatch",
    ),
    pytest.param(
        ("client_cert: {cert}", "client_key: {encrypted_key}"),
        [
            "7: tls of backend 'drf': client_cert and client_key must be a PEM certificate and "
            "its key (unencrypted)"
        ],
        id="key-encrypted",
    ),
]


@pytest.mark.parametrize(("lines", "errors"), TLS_INVALID)
def test_tls_invalid(pems: Pems, lines: tuple[str, ...], errors: list[str]) -> None:
    files = {field.name: getattr(pems, field.name) for field in dataclasses.fields(pems)}
    text = tls_table(*(line.format(**files) for line in lines))
    with pytest.raises(RoutesError) as caught:
        parse_table(text, "routes.yaml", environ={})
    assert list(caught.value.errors) == [f"routes.yaml:{error}" for error in errors]


def test_tls_must_be_a_mapping() -> None:
    text = HEAD.replace('"http://127.0.0.1:8000"}', '"https://api.internal", tls: yes}')
    with pytest.raises(RoutesError) as caught:
        parse_table(text, environ={})
    assert caught.value.errors == (
        "routes.yaml:4: tls of backend 'drf' must be a mapping, got True",
    )


@pytest.mark.parametrize(
    "environ",
    [{}, {"STRANGLER_BACKEND_DRF_URL": "http://127.0.0.1:8000"}],
    ids=["file", "environment"],
)
def test_tls_on_an_http_backend_is_refused(environ: dict[str, str]) -> None:
    url = "http://127.0.0.1:8000" if not environ else "https://api.internal"
    with pytest.raises(RoutesError) as caught:
        parse_table(tls_table("verify: true", url=url), environ=environ)
    assert caught.value.errors == (
        "routes.yaml:6: backend 'drf': tls needs an https:// url, got 'http://127.0.0.1:8000'",
    )
