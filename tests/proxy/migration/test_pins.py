"""proxy.migration.pins through BackendChooser: pinned clients by header, cookie, client address
(CIDR) and SHA-256, their place before methods and canary and after the tester override, the
hashing they cost; then through the real forwarder, counted in strangler_pinned_total."""

from __future__ import annotations

import hashlib
import io
import ipaddress
from typing import Any

import pytest

from proxy.http.messages import Request
from proxy.migration import pins
from proxy.migration.canary import CANARY, FORCED, PINNED, ROUTED, BackendChooser
from proxy.routing.model import RouteTable
from proxy.routing.parser import parse_table
from proxy.settings import Settings
from tests.support.raw_http import canned, exchange, respond
from tests.support.routed import log_lines, routed_proxy, routes_yaml, sample

TOKEN = "tester-s3cret"
BROKEN = b"key-of-broken-client"
DIGEST = hashlib.sha256(BROKEN).hexdigest()
BACKENDS = {"legacy": "http://127.0.0.1:5000", "drf": "http://127.0.0.1:8000"}
# bookings: everything to drf (canary 100%, POST overridden to drf too), but for its pins.
BOOKINGS = f"""\
  bookings:
    backend: legacy
    methods: {{POST: drf}}
    canary: {{backend: drf, percent: 100}}
    clients:
      - {{match: "header:X-Application-Key", value_sha256: "{DIGEST}", backend: legacy}}
      - {{match: "cookie:session", value: "beta-tester", backend: drf}}
      - {{match: client_ip, value: "10.0.0.0/8", backend: legacy}}
      - {{match: client_ip, value: "10.1.0.0/16", backend: drf}}
      - {{match: client_ip, value: "2001:db8::/32", backend: legacy}}
  tours: drf
"""


def table(resources: str = BOOKINGS) -> RouteTable:
    return parse_table(routes_yaml(BACKENDS, "drf", resources), environ={})


def request(
    *headers: tuple[bytes, bytes],
    method: str = "GET",
    path: bytes = b"/bookings/1",
    peer: str = "127.0.0.1",
    trusted: bool = False,
) -> Request:
    return Request(method, path, "1.1", list(headers), peer, trusted, True)


def choose(chooser: BackendChooser, routes: RouteTable, req: Request) -> tuple[str, str]:
    backend, why = chooser.choose(routes, routes.match(req.method, req.path), req)
    return backend.name, why


KEY = (b"X-Application-Key", BROKEN)


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (request(), ("drf", CANARY)),
        (request(KEY), ("legacy", PINNED)),  # by the SHA-256 of the header's value
        (request((b"x-application-key", BROKEN)), ("legacy", PINNED)),
        (request(KEY, method="POST"), ("legacy", PINNED)),  # before the method override
        (request((b"X-Application-Key", BROKEN + b"x")), ("drf", CANARY)),
        (request((b"X-Application-Key", b"")), ("drf", CANARY)),
        (request((b"X-Other", BROKEN)), ("drf", CANARY)),
        (request((b"Cookie", b"a=1; session=beta-tester")), ("drf", PINNED)),
        (request((b"Cookie", b"session=beta")), ("drf", CANARY)),
        (request(peer="10.2.3.4"), ("legacy", PINNED)),
        (request(peer="10.1.3.4"), ("legacy", PINNED)),  # 10.0.0.0/8 is listed first
        (request(peer="::ffff:10.2.3.4"), ("legacy", PINNED)),  # from a dual-stack listener
        (request(peer="2001:db8::1"), ("legacy", PINNED)),
        (request(peer="11.0.0.1"), ("drf", CANARY)),
        (request(method="POST", peer="11.0.0.1"), ("drf", ROUTED)),
        (request(path=b"/tours/1", peer="10.2.3.4"), ("drf", ROUTED)),  # pins are per resource
        # two pins match: the first listed wins (the cookie's drf is listed after the header)
        (request((b"Cookie", b"session=beta-tester"), KEY), ("legacy", PINNED)),
        (request((b"Cookie", b"session=beta-tester"), peer="10.0.0.1"), ("drf", PINNED)),
    ],
)
def test_pins_come_before_methods_and_canary(req: Request, expected: tuple[str, str]) -> None:
    assert choose(BackendChooser(Settings()), table(), req) == expected


def test_the_tester_override_beats_a_pin() -> None:
    chooser = BackendChooser(Settings(tester_token=TOKEN))
    forced = (b"X-Strangler-Force", f"drf; token={TOKEN}".encode())
    assert choose(chooser, table(), request(KEY, forced)) == ("drf", FORCED)
    wrong = (b"X-Strangler-Force", b"drf; token=nope")
    assert choose(chooser, table(), request(KEY, wrong)) == ("legacy", PINNED)


def test_client_ip_behind_trusted_proxies() -> None:
    settings = Settings(trusted_proxies=(ipaddress.ip_network("192.168.0.0/16"),))
    chooser = BackendChooser(settings)
    forwarded = (b"X-Forwarded-For", b"10.9.9.9, 192.168.0.3")
    assert choose(chooser, table(), request(forwarded, peer="192.168.0.2", trusted=True)) == (
        "legacy",
        PINNED,
    )
    junk = (b"X-Forwarded-For", b"not-an-address")
    assert choose(chooser, table(), request(junk, peer="192.168.0.2", trusted=True)) == (
        "drf",
        CANARY,
    )


def test_a_reload_brings_the_new_pins() -> None:
    chooser = BackendChooser(Settings())
    assert choose(chooser, table(), request(KEY)) == ("legacy", PINNED)
    unpinned = table("  bookings: {backend: legacy, canary: {backend: drf, percent: 100}}\n")
    assert choose(chooser, unpinned, request(KEY)) == ("drf", CANARY)


class CountingSha256:
    """hashlib.sha256 that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = hashlib.sha256

    def __call__(self, data: bytes) -> Any:
        self.calls += 1
        return self.real(data)


@pytest.mark.parametrize(
    ("resources", "hashes"),
    [
        ("  bookings: legacy\n", 0),  # no pins: nothing read, nothing hashed
        (  # values in clear only: a lookup, no hash
            "  bookings:\n    backend: legacy\n    clients:\n"
            + "".join(
                f'      - {{match: "header:X-Application-Key", value: "k{n}", backend: drf}}\n'
                for n in range(3)
            ),
            0,
        ),
        (  # three hashed pins of one header: one hash per request
            "  bookings:\n    backend: legacy\n    clients:\n"
            + "".join(
                f'      - {{match: "header:X-Application-Key", value_sha256: "{digest}", '
                "backend: drf}\n"
                for digest in (DIGEST, "0" * 64, "f" * 64)
            ),
            1,
        ),
    ],
)
def test_one_hash_per_request_at_most(
    monkeypatch: pytest.MonkeyPatch, resources: str, hashes: int
) -> None:
    counting = CountingSha256()
    monkeypatch.setattr(pins, "sha256", counting)
    chooser, routes = BackendChooser(Settings()), table(resources)
    for _ in range(5):
        chooser.choose(routes, routes.match("GET", "/bookings/1"), request(KEY))
    assert counting.calls == 5 * hashes


# -- through the forwarder ----------------------------------------------------------------------


async def get(port: int, path: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = b"".join(header + b"\r\n" for header in headers)
    head = b"%b %b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n%b\r\n" % (method, path, lines)
    return (await exchange(port, head)).body


async def test_pinned_clients_through_the_forwarder_counted_exactly(upstream_factory) -> None:
    legacy = await upstream_factory(canned(respond(b"200 OK", b"legacy")))
    drf = await upstream_factory(canned(respond(b"200 OK", b"drf")))
    resources = f"""\
  bookings:
    backend: legacy
    methods: {{POST: drf}}
    canary: {{backend: drf, percent: 100}}
    clients:
      - {{match: "header:X-Application-Key", value_sha256: "{DIGEST}", backend: legacy}}
  tours: legacy
  tours/*/departures:
    backend: drf
    clients:
      - {{match: client_ip, value: "127.0.0.0/8", backend: legacy}}
"""
    text = routes_yaml({"legacy": legacy.url, "drf": drf.url}, "legacy", resources)
    log = io.StringIO()
    pinned_key = b"X-Application-Key: " + BROKEN
    async with routed_proxy(text, log=log) as proxy:
        answers = [
            await get(proxy.port, b"/bookings/1", pinned_key),
            await get(proxy.port, b"/bookings/2", pinned_key, method=b"POST"),
            await get(proxy.port, b"/bookings/3", b"X-Application-Key: someone-else"),
            await get(
                proxy.port, b"/bookings/4", b"X-Application-Key: someone-else", method=b"POST"
            ),
            await get(proxy.port, b"/tours/5/departures"),  # from 127.0.0.1: pinned
            await get(proxy.port, b"/tours/5"),
        ]
        counts = {
            (resource, backend): sample(
                proxy, "strangler_pinned_total", resource=resource, backend=backend
            )
            for resource in ("bookings", "tours/*/departures")
            for backend in ("legacy", "drf")
        }
        requests = sample(
            proxy,
            "strangler_requests_total",
            resource="tours/*/departures",
            backend="legacy",
            method="GET",
            code="200",
        )
        lines = log_lines(proxy, log)
    assert answers == [b"legacy", b"legacy", b"drf", b"drf", b"legacy", b"legacy"]
    assert counts == {
        ("bookings", "legacy"): 2.0,
        ("bookings", "drf"): None,
        ("tours/*/departures", "legacy"): 1.0,
        ("tours/*/departures", "drf"): None,
    }
    assert requests == 1.0
    assert [(line["resource"], line["backend"], line["canary"]) for line in lines] == [
        ("bookings", "legacy", False),
        ("bookings", "legacy", False),
        ("bookings", "drf", True),
        ("bookings", "drf", False),
        ("tours/*/departures", "legacy", False),
        ("tours", "legacy", False),
    ]
    assert [r.request_line for r in legacy.requests] == [
        b"GET /bookings/1 HTTP/1.1",
        b"POST /bookings/2 HTTP/1.1",
        b"GET /tours/5/departures HTTP/1.1",
        b"GET /tours/5 HTTP/1.1",
    ]
