"""proxy.migration.shadow, classes and learned noise, through the real listener and forwarder:
each class produced by a shadow backend that differs from the live one in exactly that way, and
noise learned from a primary that answers a random field."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.support.raw_http import Handler, RawRequest, Upstream, read_body, read_head
from tests.support.shadow_rig import Rig, Start, rigs, routes

BODY = {"id": 1, "name": "Ada", "tags": ["a", "b"], "meta": {"generated_at": "t0"}}
JSON = b"application/json"


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    async with rigs() as start:
        yield start


def backend(
    status: bytes = b"200 OK",
    body: object = BODY,
    headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Type", JSON),),
) -> Callable[[Upstream], Handler]:
    """A keep-alive upstream answering every request alike: `body` (JSON, or bytes as they are)
    with exactly `headers` (Content-Length added)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = b"HTTP/1.1 %b\r\n" % status + b"".join(b"%b: %b\r\n" % pair for pair in headers)

    def make(upstream: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while request_head := await read_head(reader):
                upstream.requests.append(
                    RawRequest(request_head, await read_body(reader, request_head))
                )
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(data) + data)
                await writer.drain()

        return handle

    return make


def changed(**fields: object) -> dict[str, object]:
    return {**BODY, **fields}


WITHOUT_NAME = {key: value for key, value in BODY.items() if key != "name"}
CASES = [
    pytest.param(backend(), "match", None, id="same"),
    pytest.param(backend(b"404 Not Found"), "mismatch", "status", id="status-class"),
    pytest.param(backend(b"201 Created"), "mismatch", "value", id="status-same-class"),
    pytest.param(backend(body=WITHOUT_NAME), "mismatch", "schema", id="field-missing"),
    pytest.param(backend(body=changed(extra=1)), "mismatch", "schema", id="field-added"),
    pytest.param(backend(body=changed(id="1")), "mismatch", "schema", id="other-type"),
    pytest.param(backend(body=changed(name="ADA")), "mismatch", "value", id="other-value"),
    pytest.param(
        backend(headers=((b"Content-Type", b"text/html"),)), "mismatch", "header", id="type"
    ),
    pytest.param(
        backend(headers=((b"Content-Type", JSON), (b"Location", b"/x/1"))),
        "mismatch",
        "header",
        id="location",
    ),
    pytest.param(
        backend(headers=((b"Content-Type", JSON), (b"Allow", b"GET"))),
        "mismatch",
        "header",
        id="allow",
    ),
    pytest.param(
        backend(body=changed(meta={"generated_at": "t1"})), "noise", "noise", id="declared"
    ),
]


@pytest.mark.parametrize(("shadow_backend", "result", "kind"), CASES)
async def test_each_class_from_a_backend_that_differs_in_exactly_that_way(
    upstream_factory: Start,
    rig_factory: Callable[..., Awaitable[Rig]],
    shadow_backend: Callable[[Upstream], Handler],
    result: str,
    kind: str | None,
) -> None:
    live = await upstream_factory(backend())
    shadow = await upstream_factory(shadow_backend)
    rig = await rig_factory(routes(live.url, shadow.url, ignore='["$.meta.generated_at"]'))
    assert (await rig.get("/things/1")).status == 200
    await rig.settled()
    assert rig.count(result) == 1
    for other in {"match", "mismatch", "noise", "error"} - {result}:
        assert rig.count(other) == 0, other
    for every in ("status", "schema", "value", "header", "noise"):
        counted = rig.state.registry.get_sample_value(
            "strangler_shadow_mismatches_total", {"resource": "things", "class": every}
        )
        assert (counted or 0) == (1 if every == kind else 0), every
    kept = rig.shadows.recent("things", 10)
    assert [m.kind for m in kept] == ([] if kind is None else [kind])


async def test_noise_is_learned_from_the_primary_and_never_hides_status_or_schema(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    nonces = itertools.count()

    def random_field(status: bytes = b"200 OK", drop: str | None = None) -> Callable[..., Handler]:
        def make(upstream: Upstream) -> Handler:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while head := await read_head(reader):
                    upstream.requests.append(RawRequest(head, await read_body(reader, head)))
                    gone = status if b"/things/gone" in head else b"200 OK"
                    body = {**BODY, "nonce": next(nonces)}
                    if drop is not None and b"/things/short" in head:
                        del body[drop]
                    data = json.dumps(body).encode()
                    writer.write(
                        b"HTTP/1.1 %b\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%b" % (gone, len(data), data)
                    )
                    await writer.drain()

            return handle

        return make

    live = await upstream_factory(random_field())
    shadow = await upstream_factory(random_field(b"404 Not Found", drop="nonce"))
    rig = await rig_factory(routes(live.url, shadow.url, more="learn_noise: 1, noise_after: 3"))
    for _ in range(3):  # each is also asked of the primary again: $.nonce differs on its own
        await rig.get("/things/1")
        await rig.settled()
    assert rig.shadows.noise.counts("things") == {"$.nonce": 3}
    assert (rig.count("mismatch"), rig.count("noise")) == (2, 1)  # learned by the third
    for path in ("/things/1", "/things/gone", "/things/short"):
        await rig.get(path)
        await rig.settled()
    kinds = {(m.target, m.kind) for m in rig.shadows.recent("things", 20)}
    assert ("/things/gone", "status") in kinds
    assert ("/things/short", "schema") in kinds
    assert (rig.count("mismatch"), rig.count("noise")) == (4, 2)
    # /things/1: a value mismatch until $.nonce was learned, noise since (newest first)
    assert [m.kind for m in rig.shadows.recent("things", 20) if m.target == "/things/1"] == [
        "noise",
        "noise",
        "value",
        "value",
    ]
