"""The routing key, byte for byte: every spelling of a resource's path that the gateways serve as
that resource reaches the resource's backend, with the target upstream exactly as the client sent
it; what the gateways would read differently never leaves the proxy.

Two raw loopback upstreams stand for the stacks; the last test asks the real gateways (gunicorn +
Flask, gunicorn + Django) what each spelling resolves to, which is what `routing_key` mirrors.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable

import pytest

from proxy.http.messages import Request
from proxy.routing.model import routing_key
from tests.support.raw_http import InProcessProxy, RawResponse, Upstream, canned, exchange, respond
from tests.support.routed import log_lines, routed_proxy, routes_yaml, sample

# Served as /bookings/7 by both gateways; routed by a key other than `bookings` before.
BOOKINGS_SPELLINGS = (
    b"/bookings%2F7",
    b"/bookings%2f7?x=1",
    b"/book%69ngs%2F7",
    b"http://h/bookings/7",
    b"HTTP://h:80/bookings/7?x=1",
    b"http://u@h/bookings%2F7",
    b"http:///bookings/7",
)
# Served as /bookings/7 by both gateways, routed as bookings all along.
PLAIN_SPELLINGS = (b"/bookings/7", b"/bookings/7?x=1", b"/book%69ngs/7", b"/bookings/7#top")
# Not bookings to either gateway (404): gunicorn, Flask and Django normalise none of these.
OTHER_SPELLINGS = (
    b"//bookings/7",
    b"/%2Fbookings/7",
    b"/./bookings/7",
    b"/%2e/bookings/7",
    b"/x/../bookings/7",
    b"/tours/../bookings/7",
    b"/bookings;v=1/7",
    b"/\\bookings/7",
    b"http://h//bookings/7",
    b"http://h?/bookings/7",
)
# Read differently by the two gateways (legacy: bookings/7; DRF: 404): refused with 400.
AMBIGUOUS = (b"Xbookings/7?a=://", b"http:Xbookings/7?a=://")


def get(target: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: h", b"X-Application-Key: demo", *headers]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


Start = Callable[..., Awaitable[Upstream]]  # the upstream_factory fixture


async def two_stacks(upstream_factory: Start) -> tuple[Upstream, Upstream]:
    legacy = await upstream_factory(canned(respond(b"200 OK", b"legacy")))
    drf = await upstream_factory(canned(respond(b"200 OK", b"drf")))
    return legacy, drf


def table(legacy: Upstream, drf: Upstream, default: str, bookings: str) -> str:
    return routes_yaml({"legacy": legacy.url, "drf": drf.url}, default, f"  bookings: {bookings}\n")


def request_lines(upstream: Upstream) -> list[bytes]:
    return [request.request_line for request in upstream.requests]


@pytest.mark.parametrize(("default", "bookings"), [("legacy", "drf"), ("drf", "legacy")])
@pytest.mark.parametrize("target", BOOKINGS_SPELLINGS, ids=lambda t: t.decode())
async def test_each_spelling_reaches_the_resources_backend_unchanged(
    upstream_factory: Start, target: bytes, default: str, bookings: str
) -> None:
    legacy, drf = await two_stacks(upstream_factory)
    upstreams = {"legacy": legacy, "drf": drf}
    async with routed_proxy(table(legacy, drf, default, bookings)) as proxy:
        answer = await exchange(proxy.port, get(target))
    assert (answer.status, answer.body) == (200, bookings.encode())
    assert request_lines(upstreams[bookings]) == [b"GET " + target + b" HTTP/1.1"]
    assert request_lines(upstreams[default]) == []


async def test_metrics_access_log_and_fallback_see_the_same_key(upstream_factory: Start) -> None:
    legacy = await upstream_factory(canned(respond(b"200 OK", b"legacy")))
    drf = await upstream_factory(canned(respond(b"404 NOT FOUND", b"drf")))
    resources = "  bookings:\n    backend: drf\n    fallback: {backend: legacy, on: [404]}\n"
    text = routes_yaml({"legacy": legacy.url, "drf": drf.url}, "legacy", resources)
    targets = [b"/bookings%2F7", b"http://h/bookings/7"]
    log = io.StringIO()
    async with routed_proxy(text, log=log) as proxy:
        for target in targets:
            answer = await exchange(proxy.port, get(target))
            assert (answer.status, answer.body) == (200, b"legacy")  # drf's 404, replayed
        lines = log_lines(proxy, log)
        requests = sample(proxy, "strangler_requests_total", resource="bookings",
                          backend="legacy", method="GET", code="200")  # fmt: skip
        fallbacks = sample(proxy, "strangler_fallbacks_total", resource="bookings",
                           from_backend="drf", to_backend="legacy", code="404")  # fmt: skip
        debt = [(entry.resource, entry.count) for entry in proxy.state.debt.entries()]
    sent = [b"GET " + target + b" HTTP/1.1" for target in targets]
    assert request_lines(drf) == request_lines(legacy) == sent
    assert (requests, fallbacks) == (2.0, 2.0)
    assert [(line["path"], line["resource"], line["fallback"]) for line in lines] == [
        ("/bookings%2F7", "bookings", "drf"),
        ("http://h/bookings/7", "bookings", "drf"),
    ]
    assert sorted(debt) == [("bookings", 1), ("bookings", 1)]  # one shape per raw path


async def test_wsgi_path_headers_never_reach_a_backend(upstream_factory: Start) -> None:
    # gunicorn would serve /x/bookings/7 as bookings/7 with SCRIPT_NAME: /x (see the last test)
    legacy, drf = await two_stacks(upstream_factory)
    request = get(b"/x/bookings/7", b"SCRIPT_NAME: /x", b"path_info: /bookings/7", b"X-Kept: 1")
    async with routed_proxy(table(legacy, drf, "legacy", "drf")) as proxy:
        answer = await exchange(proxy.port, request)
    assert (answer.status, answer.body) == (200, b"legacy")
    assert request_lines(legacy) == [b"GET /x/bookings/7 HTTP/1.1"]
    names = [name.lower() for name, _ in legacy.requests[0].headers]
    assert b"script_name" not in names and b"path_info" not in names
    assert b"x-kept" in names


class Recorder:
    """A client connection that keeps what the forwarder writes to it."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def abort(self) -> None:
        pass


def envelope(answer: RawResponse) -> tuple[int, int]:
    return answer.status, json.loads(answer.body)["http_status_code"]


async def refused_by_the_forwarder(proxy: InProcessProxy, target: bytes) -> bytes:
    request = Request("GET", target, "1.1", [(b"Host", b"h")], "127.0.0.1", False, True)
    client = Recorder()
    assert await proxy.listener.forwarder.handle(request, client) is False
    return client.data


async def test_targets_without_a_key_are_refused(upstream_factory: Start) -> None:
    legacy, drf = await two_stacks(upstream_factory)
    async with routed_proxy(table(legacy, drf, "legacy", "drf")) as proxy:
        for target in AMBIGUOUS:
            assert envelope(await exchange(proxy.port, get(target))) == (400, 400)  # by llhttp
            # and by the forwarder, should a parser ever let one through
            answer = await refused_by_the_forwarder(proxy, target)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert b"\r\nContent-Type: application/json\r\n" in head
            assert json.loads(body)["http_status_code"] == 400
    assert request_lines(legacy) == request_lines(drf) == []


# -- what the real gateways resolve --------------------------------------------------------------


async def answer_of(url: str, target: bytes, *headers: bytes) -> tuple[int, bytes]:
    port = int(url.rsplit(":", 1)[1])
    answer = await exchange(port, get(target, *headers), timeout=10)
    return answer.status, answer.body


async def test_the_rule_is_what_the_real_gateways_do(legacy_url: str, drf_url: str) -> None:
    canonical = await answer_of(legacy_url, b"/bookings/7")
    assert canonical[0] == 200 and json.loads(canonical[1])["href"] == "http://h/bookings/7"
    assert await answer_of(drf_url, b"/bookings/7") == canonical
    for target in (*PLAIN_SPELLINGS, *BOOKINGS_SPELLINGS, *OTHER_SPELLINGS):
        key = routing_key(target.decode("latin-1"))
        for url in (legacy_url, drf_url):
            status, body = await answer_of(url, target)
            if key == "bookings":
                assert (status, body) == canonical, (url, target)
            else:  # no resource at all: the error envelope's 404
                assert (status, json.loads(body)["http_status_code"]) == (404, 404), (url, target)
    for target in AMBIGUOUS:
        assert routing_key(target.decode("latin-1")) is None
        readings = {await answer_of(url, target) for url in (legacy_url, drf_url)}
        assert canonical in readings and len(readings) == 2  # legacy: bookings/7; DRF: 404
    # Why SCRIPT_NAME never leaves the proxy: from 127.0.0.1, gunicorn cuts it off the path.
    script_name = await answer_of(legacy_url, b"/x/bookings/7", b"SCRIPT_NAME: /x")
    assert script_name == canonical
