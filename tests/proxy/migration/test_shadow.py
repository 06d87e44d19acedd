"""proxy.migration.shadow: copies of GET/HEAD requests compared with the live answers, through
the real listener and forwarder, loopback fakes for both backends."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy.migration.shadow import head_field
from tests.support import free_port
from tests.support.raw_http import RawRequest
from tests.support.shadow_rig import (
    IGNORE,
    LIVE_BODY,
    Rig,
    Start,
    altered,
    fixed,
    json_backend,
    rigs,
    routes,
)


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    async with rigs() as start:
        yield start


async def test_a_matching_shadow_is_counted_as_a_match(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    rig = await rig_factory(routes(live.url, shadow.url))
    for path in ("/things", "/things/1", "/things/1/parts?page=2"):
        assert (await rig.get(path)).status == 200
    assert (await rig.get("/things/1", "HEAD")).status == 200
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch"), rig.count("error")) == (4, 0, 0)
    # the copy is the live request: same target, same Host and request id
    assert [r.head for r in shadow.requests] == [r.head for r in live.requests]
    assert shadow.requests[2].request_line == b"GET /things/1/parts?page=2 HTTP/1.1"
    assert (b"Host", b"api.example") in shadow.requests[0].headers
    assert head_field(shadow.requests[1].head + b"\r\n", b"x-request-id") == "rid-/things/1"


async def test_live_answer_is_unchanged_and_not_delayed_by_a_slow_shadow(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(fixed({"other": 1}), delay=2.0))
    rig = await rig_factory(routes(live.url, shadow.url))
    started = time.monotonic()
    response = await rig.get("/things/1")
    elapsed = time.monotonic() - started
    assert elapsed < 0.5
    assert response.status == 200
    assert response.body == json.dumps(LIVE_BODY).encode()
    assert response.header(b"Content-Type") == b"application/json"
    # a second request right behind it is not held up by the shadow either
    started = time.monotonic()
    assert (await rig.get("/things/2")).body == json.dumps(LIVE_BODY).encode()
    assert time.monotonic() - started < 0.5
    assert rig.count("mismatch") == 0  # the shadow has not answered yet
    await rig.settled()
    assert rig.count("mismatch") == 2


async def test_only_get_and_head_are_shadowed(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True})))
    rig = await rig_factory(routes(live.url, shadow.url))
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert (await rig.get("/things/1", method, b'{"a": 1}')).status == 200
    assert (await rig.get("/things/1", "DELETE")).status == 200
    assert (await rig.get("/things/1", "GET", b"a body")).status == 200  # a GET with a body
    assert (await rig.get("/plain/1")).status == 200  # a resource without shadow
    await rig.settled()
    assert len(live.requests) == 8
    assert shadow.requests == []
    assert rig.count("match") == rig.count("mismatch") == rig.count("error") == 0


async def test_percent_selects_requests(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True})))
    draws = iter([0.10, 0.25, 0.24, 0.90, 0.0])
    rig = await rig_factory(routes(live.url, shadow.url, percent=25), chance=lambda: next(draws))
    for n in range(5):
        await rig.get(f"/things/{n}")
    await rig.settled()
    assert [r.request_line for r in shadow.requests] == [
        b"GET /things/0 HTTP/1.1",
        b"GET /things/2 HTTP/1.1",
        b"GET /things/4 HTTP/1.1",
    ]
    none = await rig_factory(routes(live.url, shadow.url, percent=0))
    await none.get("/things/9")
    await none.settled()
    assert len(shadow.requests) == 3


async def test_a_full_queue_drops_and_counts(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True})))
    rig = await rig_factory(routes(live.url, shadow.url), start_workers=False, queue_size=2)
    for n in range(5):
        assert (await rig.get(f"/things/{n}")).status == 200
    dropped = rig.state.registry.get_sample_value(
        "strangler_shadow_dropped_total", {"resource": "things"}
    )
    assert dropped == 3
    assert shadow.requests == []
    rig.shadows.start()
    await rig.settled()
    assert rig.count("match") == 2
    assert [r.request_line for r in shadow.requests] == [
        b"GET /things/0 HTTP/1.1",
        b"GET /things/1 HTTP/1.1",
    ]


async def test_a_shadow_backend_down_counts_errors(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    rig = await rig_factory(routes(live.url, f"http://127.0.0.1:{free_port()}"))
    for _ in range(3):
        response = await rig.get("/things/1")
        assert (response.status, response.body) == (200, b'{"ok": true}')
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch"), rig.count("error")) == (0, 0, 3)
    assert rig.shadows.snapshot() == {}
    # shadow failures are not the live backends' upstream errors
    assert (
        rig.state.registry.get_sample_value(
            "strangler_upstream_errors_total", {"backend": "shadow", "kind": "connect"}
        )
        is None
    )


async def test_a_shadow_that_times_out_counts_an_error(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"ok": True})))
    shadow = await upstream_factory(json_backend(fixed({"ok": True}), delay=5))
    text = routes(live.url, shadow.url).replace(
        f'shadow: {{url: "{shadow.url}"}}', f'shadow: {{url: "{shadow.url}", read_timeout: 0.2}}'
    )
    rig = await rig_factory(text)
    assert (await rig.get("/things/1")).status == 200
    await rig.settled()
    assert rig.count("error") == 1


async def test_mismatches_name_the_fields_and_respect_ignore_paths(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(altered))
    rig = await rig_factory(routes(live.url, shadow.url, ignore=IGNORE))
    for path in ("/things/1", "/things/2", "/things/3"):
        await rig.get(path)
    await rig.settled()
    # /things/1 and /things/3 differ only in ignored fields: noise, neither match nor mismatch
    assert (rig.count("match"), rig.count("mismatch"), rig.count("noise")) == (0, 1, 2)
    kept = rig.shadows.recent("things", 10)
    assert sorted((m.target, m.kind) for m in kept) == [
        ("/things/1", "noise"),
        ("/things/2", "value"),
        ("/things/3", "noise"),
    ]
    (mismatch,) = [m for m in kept if m.kind == "value"]
    assert (mismatch.method, mismatch.target, mismatch.request_id) == (
        "GET",
        "/things/2",
        "rid-/things/2",
    )
    assert (mismatch.backend, mismatch.shadow_backend) == ("live", "shadow")
    assert (mismatch.live_status, mismatch.shadow_status) == (200, 200)
    assert [(d.text(), d.class_) for d in mismatch.differences] == [
        ('$.meta.generated_at: live="2026-11-28T10:00:00Z" shadow="2026-11-28T10:00:01Z"', "noise"),
        ('$.results[0].href: live="http://api/things/1" shadow="http://drf/things/1"', "noise"),
        ('$.results[1].href: live="http://api/things/2" shadow="http://drf/things/2"', "noise"),
        ('$.results[1].contact_email: live="b@example.com" shadow="B@example.com"', "value"),
        ('$.results[2]: added, shadow={"id": 3}', "value"),
    ]
    counted = rig.state.registry.get_sample_value(
        "strangler_shadow_mismatches_total", {"resource": "things", "class": "value"}
    )
    assert counted == 1


async def test_status_differences_and_big_bodies_by_hash(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    big = {"items": list(range(2000))}
    other = {"items": [*range(1999), 0]}

    def live_answer(request: RawRequest) -> tuple[bytes, bytes]:
        return b"200 OK", json.dumps(big).encode()

    def shadow_answer(request: RawRequest) -> tuple[bytes, bytes]:
        if b"/things/gone" in request.request_line:
            return b"404 Not Found", b'{"http_status_code": 404}'
        if b"/things/same" in request.request_line:
            return b"200 OK", json.dumps(big).encode()
        return b"200 OK", json.dumps(other).encode()

    live = await upstream_factory(json_backend(live_answer))
    shadow = await upstream_factory(json_backend(shadow_answer))
    rig = await rig_factory(routes(live.url, shadow.url), body_cap=1000)
    for path in ("/things/same", "/things/changed", "/things/gone"):
        response = await rig.get(path)
        assert response.body == json.dumps(big).encode()  # the whole body, past the cap
    await rig.settled()
    assert (rig.count("match"), rig.count("mismatch")) == (1, 2)
    gone, changed = rig.shadows.recent("things", 10)
    assert [d.where for d in changed.differences] == ["body"]
    size = len(json.dumps(big))
    assert changed.differences[0].live.startswith(f"<{size} bytes, sha256 ")
    assert [d.where for d in gone.differences] == ["status", "body"]
    assert (gone.live_status, gone.shadow_status) == (200, 404)


async def test_kept_mismatches_are_bounded(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed({"n": 1})))
    shadow = await upstream_factory(json_backend(fixed({"n": 2})))
    rig = await rig_factory(routes(live.url, shadow.url), keep=3)
    for n in range(5):
        await rig.get(f"/things/{n}")
    await rig.settled()
    assert rig.count("mismatch") == 5
    assert [m.target for m in rig.shadows.recent("things", 10)] == [
        "/things/4",
        "/things/3",
        "/things/2",
    ]
    assert [m.target for m in rig.shadows.recent("things", 1)] == ["/things/4"]


def test_head_field() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\nx-request-id:  abc \r\nX-Request-ID: second\r\n\r\n"
    assert head_field(head, b"x-request-id") == "abc"
    assert head_field(head, b"x-other") is None
