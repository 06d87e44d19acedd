"""proxy.migration.canary: the split, stickiness, monotonic growth, key extraction and the tester
override, as pure functions and through the real forwarder with raw loopback upstreams."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import random

import pytest

from proxy.http.messages import Request
from proxy.migration.canary import (
    BUCKETS,
    CANARY,
    FORCED,
    ROUTED,
    BackendChooser,
    bucket,
    client_address,
    cookie_value,
    parse_force,
    resource_salt,
    threshold,
)
from proxy.routing.model import RouteTable
from proxy.routing.parser import parse_table
from proxy.settings import Settings
from tests.support.raw_http import canned, exchange, read_response, respond
from tests.support.routed import log_lines, routed_proxy, routes_yaml

KEYS = [f"client-{n}".encode() for n in range(10_000)]
TOKEN = "tester-s3cret"


def table(
    percent: float, sticky: str | None = "header:X-Application-Key", methods: str = ""
) -> RouteTable:
    sticky_part = f", sticky: '{sticky}'" if sticky else ""
    resources = (
        "  bookings:\n"
        "    backend: legacy\n"
        f"    canary: {{backend: drf, percent: {percent}{sticky_part}}}\n"
        + (f"    methods: {methods}\n" if methods else "")
        + "  tours: legacy\n"
    )
    backends = {"legacy": "http://127.0.0.1:5000", "drf": "http://127.0.0.1:8000"}
    return parse_table(routes_yaml(backends, "legacy", resources))


def request(
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    path: bytes = b"/bookings/1",
    peer: str = "127.0.0.1",
    trusted: bool = False,
) -> Request:
    return Request(method, path, "1.1", headers or [], peer, trusted, True)


def side(chooser: BackendChooser, routes: RouteTable, req: Request) -> str:
    decision = routes.match(req.method, req.path)
    backend, _ = chooser.choose(routes, decision, req)
    return backend.name


def canary_keys(percent: float, salt: bytes = resource_salt("bookings")) -> set[bytes]:
    limit = threshold(percent)
    return {key for key in KEYS if bucket(key, salt) < limit}


# -- the split --------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [1, 10, 30, 50, 90])
def test_split_over_10000_keys_within_one_point(percent: float) -> None:
    share = len(canary_keys(percent)) / len(KEYS) * 100
    assert percent - 1 <= share <= percent + 1, share


def test_edges_none_and_all() -> None:
    assert canary_keys(0) == set()
    assert canary_keys(100) == set(KEYS)
    assert threshold(12.34) == 1234
    assert all(0 <= bucket(key, b"s" * 16) < BUCKETS for key in KEYS[:100])


def test_buckets_are_uniform_over_ten_ranges() -> None:
    counts = [0] * 10
    for key in KEYS:
        counts[bucket(key, resource_salt("bookings")) * 10 // BUCKETS] += 1
    assert all(900 <= count <= 1100 for count in counts), counts


def test_the_salt_makes_resources_independent() -> None:
    bookings, tours = canary_keys(10), canary_keys(10, resource_salt("tours"))
    overlap = len(bookings & tours) / len(bookings)
    assert 0.05 <= overlap <= 0.15, overlap  # independent: about 10% of the 10% again


def test_monotonic_growth() -> None:
    ten, twenty, fifty = canary_keys(10), canary_keys(20), canary_keys(50)
    assert ten < twenty < fifty
    assert len(ten) < len(twenty) < len(fifty)


def test_chooser_split_stickiness_and_growth_over_requests() -> None:
    chooser = BackendChooser(Settings())
    sides: dict[float, dict[bytes, str]] = {}
    for percent in (10, 20, 50):
        routes = table(percent)
        sides[percent] = {
            key: side(chooser, routes, request([(b"x-application-key", key)])) for key in KEYS
        }
    on_drf = {p: {k for k, s in by_key.items() if s == "drf"} for p, by_key in sides.items()}
    assert on_drf[10] == canary_keys(10)
    assert on_drf[10] <= on_drf[20] <= on_drf[50]
    assert 900 <= len(on_drf[10]) <= 1100


def test_same_key_same_side_1000_times() -> None:
    chooser = BackendChooser(Settings())
    routes = table(50)
    for key in (b"alpha", b"beta", b"gamma", b"delta"):
        seen = {side(chooser, routes, request([(b"X-Application-Key", key)])) for _ in range(1000)}
        assert len(seen) == 1
    # header names are case-insensitive, values are not
    upper = side(chooser, routes, request([(b"X-APPLICATION-KEY", b"alpha")]))
    assert upper == side(chooser, routes, request([(b"x-application-key", b"alpha")]))


def test_sticky_on_authorization_hashes_the_whole_header_value() -> None:
    chooser = BackendChooser(Settings())
    routes = table(30, sticky="header:Authorization")
    tokens = [b"Bearer tok-%d" % n for n in range(10_000)]
    sides = {token: side(chooser, routes, request([(b"Authorization", token)])) for token in tokens}
    on_drf = {token for token, name in sides.items() if name == "drf"}
    limit, salt = threshold(30), resource_salt("bookings")
    assert on_drf == {token for token in tokens if bucket(token, salt) < limit}
    assert 2700 <= len(on_drf) <= 3300  # bearer tokens spread over the buckets
    for token in tokens[:20]:  # and keep their side
        again = {side(chooser, routes, request([(b"authorization", token)])) for _ in range(50)}
        assert again == {sides[token]}
    # the scheme is part of the key: another scheme with the same credential is another client
    assert bucket(b"Bearer abc", salt) != bucket(b"abc", salt)


def test_keyless_requests_spread_per_request() -> None:
    chooser = BackendChooser(Settings(), random.Random(7))
    routes = table(30)
    sides = [side(chooser, routes, request()) for _ in range(10_000)]
    assert 2700 <= sides.count("drf") <= 3300
    empty = [side(chooser, routes, request([(b"X-Application-Key", b"")])) for _ in range(1000)]
    assert 200 <= empty.count("drf") <= 400


def test_without_sticky_every_request_is_drawn() -> None:
    chooser = BackendChooser(Settings(), random.Random(3))
    routes = table(50, sticky=None)
    sides = [side(chooser, routes, request([(b"X-Application-Key", b"k")])) for _ in range(1000)]
    assert 400 <= sides.count("drf") <= 600


def test_per_method_override_pins_the_method() -> None:
    chooser = BackendChooser(Settings())
    routes = table(100, methods="{POST: legacy, DELETE: drf}")
    key = [(b"X-Application-Key", b"k")]
    assert side(chooser, routes, request(key, "POST")) == "legacy"
    assert side(chooser, routes, request(key, "DELETE")) == "drf"
    assert side(chooser, routes, request(key, "GET")) == "drf"
    assert side(chooser, routes, request(key, "GET", b"/tours/1")) == "legacy"


def test_reasons() -> None:
    chooser = BackendChooser(Settings(tester_token=TOKEN))
    routes = table(100)
    forced = request([(b"X-Strangler-Force", f"legacy; token={TOKEN}".encode())])
    for req, expected in [
        (request([(b"X-Application-Key", b"k")]), ("drf", CANARY)),
        (request(path=b"/tours"), ("legacy", ROUTED)),
        (forced, ("legacy", FORCED)),
    ]:
        backend, why = chooser.choose(routes, routes.match(req.method, req.path), req)
        assert (backend.name, why) == expected


# -- key extraction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"Cookie", b"session=abc")], b"abc"),
        ([(b"cookie", b"a=1; session=xyz; b=2")], b"xyz"),
        ([(b"Cookie", b"a=1"), (b"Cookie", b"session = s2 ")], None),
        ([(b"Cookie", b"a=1"), (b"Cookie", b"b=2;session=s3")], b"s3"),
        ([(b"Cookie", b"sessionx=1; xsession=2")], None),
        ([(b"Cookie", b"session")], None),
        ([(b"Set-Cookie", b"session=no")], None),
        ([], None),
    ],
)
def test_cookie_value(headers: list[tuple[bytes, bytes]], expected: bytes | None) -> None:
    assert cookie_value(headers, b"session") == expected


def test_cookie_sticky_through_the_chooser() -> None:
    chooser = BackendChooser(Settings())
    routes = table(30, sticky="cookie:session")
    salt = resource_salt("bookings")
    for key in KEYS[:300]:
        expected = "drf" if bucket(key, salt) < threshold(30) else "legacy"
        cookie = [(b"Cookie", b"theme=dark; session=%b" % key)]
        assert side(chooser, routes, request(cookie)) == expected


NETS = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("peer", "trusted", "forwarded", "expected"),
    [
        ("1.2.3.4", False, [], "1.2.3.4"),
        ("1.2.3.4", False, [b"9.9.9.9"], "1.2.3.4"),  # an untrusted peer's header is ignored
        ("10.0.0.2", True, [b"1.2.3.4"], "1.2.3.4"),
        ("10.0.0.2", True, [b"6.6.6.6, 1.2.3.4, 10.0.0.1"], "1.2.3.4"),
        ("10.0.0.2", True, [b"6.6.6.6", b"1.2.3.4 , 10.0.0.1"], "1.2.3.4"),
        ("10.0.0.2", True, [b"10.0.0.9, 10.0.0.1"], "10.0.0.9"),
        ("10.0.0.2", True, [], "10.0.0.2"),
    ],
)
def test_client_address(peer: str, trusted: bool, forwarded: list[bytes], expected: str) -> None:
    headers = [(b"X-Forwarded-For", value) for value in forwarded]
    assert client_address(peer, trusted, headers, NETS) == expected


def test_client_ip_sticky_through_the_chooser() -> None:
    chooser = BackendChooser(Settings(trusted_proxies=NETS))
    routes = table(50, sticky="client_ip")
    salt = resource_salt("bookings")
    for n in range(200):
        address = f"192.0.2.{n}"
        expected = "drf" if bucket(address.encode(), salt) < threshold(50) else "legacy"
        assert side(chooser, routes, request(peer=address)) == expected
        behind = request([(b"X-Forwarded-For", address.encode())], peer="10.0.0.2", trusted=True)
        assert side(chooser, routes, behind) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"drf; token=abc", ("drf", b"abc")),
        (b"drf;token=abc", ("drf", b"abc")),
        (b" legacy ;  Token = a=b ", ("legacy", b"a=b")),
        (b"drf", None),
        (b"drf; tok=abc", None),
        (b"; token=abc", None),
        (b"drf; token", None),
    ],
)
def test_parse_force(value: bytes, expected: tuple[str, bytes] | None) -> None:
    assert parse_force(value) == expected


# -- through the real forwarder ---------------------------------------------------------------


async def two_upstreams(upstream_factory):  # type: ignore[no-untyped-def]
    legacy = await upstream_factory(canned(respond(b"200 OK", b"legacy")))
    drf = await upstream_factory(canned(respond(b"200 OK", b"drf")))
    return legacy, drf


def proxy_routes(legacy_url: str, drf_url: str, canary: str) -> str:
    resources = f"  bookings:\n    backend: legacy\n    canary: {canary}\n  tours: legacy\n"
    return routes_yaml({"legacy": legacy_url, "drf": drf_url}, "legacy", resources)


async def get(port: int, path: bytes, *headers: bytes) -> bytes:
    head = b"GET %b HTTP/1.1\r\nHost: h\r\n%b\r\n" % (path, b"".join(h + b"\r\n" for h in headers))
    return (await exchange(port, head)).body


async def test_sticky_clients_through_the_forwarder(upstream_factory) -> None:
    legacy, drf = await two_upstreams(upstream_factory)
    text = proxy_routes(
        legacy.url, drf.url, "{backend: drf, percent: 30, sticky: 'cookie:session'}"
    )
    log = io.StringIO()
    async with routed_proxy(text, log=log) as proxy:
        salt = resource_salt("bookings")
        for n in range(100):
            key = b"user-%d" % n
            expected = b"drf" if bucket(key, salt) < threshold(30) else b"legacy"
            answers = {await get(proxy.port, b"/bookings/%d" % n, b"Cookie: session=" + key)}
            answers.add(await get(proxy.port, b"/bookings", b"Cookie: session=" + key))
            assert answers == {expected}
        lines = log_lines(proxy, log)
    on_drf = [line for line in lines if line["backend"] == "drf"]
    assert len(drf.requests) == len(on_drf) and 40 <= len(on_drf) <= 80
    assert all(line["canary"] is True for line in on_drf)
    assert all(line["canary"] is False for line in lines if line["backend"] == "legacy")


async def test_raising_the_percentage_by_reload_keeps_canary_clients(upstream_factory) -> None:
    legacy, drf = await two_upstreams(upstream_factory)
    sticky = "sticky: 'header:X-Application-Key'"
    text = proxy_routes(legacy.url, drf.url, f"{{backend: drf, percent: 10, {sticky}}}")
    async with routed_proxy(text) as proxy:
        keys = [b"k%d" % n for n in range(300)]
        before = {
            k
            for k in keys
            if await get(proxy.port, b"/bookings", b"X-Application-Key: " + k) == b"drf"
        }
        grown = proxy_routes(legacy.url, drf.url, f"{{backend: drf, percent: 40, {sticky}}}")
        proxy.state.table = parse_table(grown)
        after = {
            k
            for k in keys
            if await get(proxy.port, b"/bookings", b"X-Application-Key: " + k) == b"drf"
        }
    assert before < after
    assert 10 <= len(before) <= 50 and 90 <= len(after) <= 150


FORWARDED_TAIL = b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h"


@pytest.mark.parametrize(
    ("force", "configured", "served_by"),
    [
        (b"drf; token=" + TOKEN.encode(), TOKEN, "drf"),
        (b"drf; token=wrong", TOKEN, "legacy"),
        (b"drf; token=" + TOKEN.encode(), None, "legacy"),
        (b"nosuch; token=" + TOKEN.encode(), TOKEN, "legacy"),
        (b"drf", TOKEN, "legacy"),
    ],
)
async def test_tester_override_and_the_header_never_forwarded(
    upstream_factory, force: bytes, configured: str | None, served_by: str
) -> None:
    legacy, drf = await two_upstreams(upstream_factory)
    text = proxy_routes(legacy.url, drf.url, "{backend: drf, percent: 0}")
    log = io.StringIO()
    async with routed_proxy(text, Settings(tester_token=configured), log) as proxy:
        body = await get(
            proxy.port, b"/tours/3", b"X-Request-ID: t-1", b"X-Strangler-Force: " + force
        )
        lines = log_lines(proxy, log)
    assert body == served_by.encode()
    [received] = (drf if served_by == "drf" else legacy).requests
    assert (
        received.head
        == b"GET /tours/3 HTTP/1.1\r\nHost: h\r\nX-Request-ID: t-1\r\n" + FORWARDED_TAIL
    )
    assert [line["forced"] for line in lines] == [served_by == "drf"]


async def test_tester_override_on_a_canary_resource_both_ways(upstream_factory) -> None:
    legacy, drf = await two_upstreams(upstream_factory)
    text = proxy_routes(legacy.url, drf.url, "{backend: drf, percent: 100}")
    async with routed_proxy(text, Settings(tester_token=TOKEN)) as proxy:
        force = b"X-Strangler-Force: legacy; token=" + TOKEN.encode()
        assert await get(proxy.port, b"/bookings/1", force) == b"legacy"
        assert await get(proxy.port, b"/bookings/1") == b"drf"
    assert [r.head.count(b"Strangler") for r in legacy.requests + drf.requests] == [0, 0]


async def test_tester_override_beats_an_authorization_sticky_canary(upstream_factory) -> None:
    legacy, drf = await two_upstreams(upstream_factory)
    canary = "{backend: drf, percent: 100, sticky: 'header:Authorization'}"
    log = io.StringIO()
    async with routed_proxy(
        proxy_routes(legacy.url, drf.url, canary), Settings(tester_token=TOKEN), log
    ) as proxy:
        auth = b"Authorization: Bearer abc"
        force = b"X-Strangler-Force: legacy; token=" + TOKEN.encode()
        assert await get(proxy.port, b"/bookings/1", auth, force) == b"legacy"
        assert await get(proxy.port, b"/bookings/1", auth) == b"drf"
        lines = log_lines(proxy, log)
    # the credential goes upstream untouched; the tester's header never does
    [forced], [chosen] = legacy.requests, drf.requests
    assert (b"Authorization", b"Bearer abc") in forced.headers
    assert (b"Authorization", b"Bearer abc") in chosen.headers
    assert b"Strangler" not in forced.head
    assert [(line["forced"], line["canary"], line["client"]) for line in lines] == [
        (True, False, "sha256:c355dce9"),
        (False, True, "sha256:c355dce9"),
    ]


async def test_keep_alive_connection_each_request_chooses_anew(upstream_factory) -> None:
    legacy, drf = await two_upstreams(upstream_factory)
    text = proxy_routes(legacy.url, drf.url, "{backend: drf, percent: 50, sticky: 'header:K'}")
    async with routed_proxy(text) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        salt = resource_salt("bookings")
        expected = []
        for n in range(40):
            key = b"c%d" % n
            writer.write(b"GET /bookings HTTP/1.1\r\nHost: h\r\nK: %b\r\n\r\n" % key)
            expected.append(b"drf" if bucket(key, salt) < threshold(50) else b"legacy")
        bodies = [(await asyncio.wait_for(read_response(reader), 5)).body for _ in range(40)]
        writer.close()
    assert bodies == expected
    assert set(expected) == {b"drf", b"legacy"}
