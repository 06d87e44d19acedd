"""proxy.dataplane.heads and the 1xx path: interim responses, byte for byte: relayed to HTTP/1.1
clients only, one 100 Continue at most, and a backend status outside 100-599 is a 502."""

from __future__ import annotations

import asyncio
import json

import pytest

from proxy.dataplane.heads import (
    DROPPED,
    FORWARDED,
    REQUEST_NAME_SIZES,
    RESPONSE_NAME_SIZES,
)
from proxy.http.exchange import name_sizes
from proxy.http.messages import HOP_BY_HOP
from tests.support.raw_http import RawRequest, read_body, read_head, read_response, respond

EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\n"
    b"Link: </style.css>; rel=preload; as=style\r\n"
    b"Connection: X-Hint-Secret\r\n"
    b"X-Hint-Secret: 1\r\n"
    b"Keep-Alive: timeout=5\r\n"
    b"Link: </script.js>; rel=preload; as=script\r\n"
    b"\r\n"
)
# What a client gets of EARLY_HINTS: the hop-by-hop headers (and the one Connection names) gone.
EARLY_HINTS_RELAYED = (
    b"HTTP/1.1 103 Early Hints\r\n"
    b"Link: </style.css>; rel=preload; as=style\r\n"
    b"Link: </script.js>; rel=preload; as=script\r\n"
    b"\r\n"
)


def hinting(interims: bytes, go_on: asyncio.Event | None = None):
    """An upstream that reads a request, writes `interims`, waits for `go_on` (if given), then
    answers 200 with a body."""

    def make(upstream):
        async def handle(reader, writer):
            while head := await read_head(reader):
                upstream.requests.append(RawRequest(head, b""))
                writer.write(interims)
                await writer.drain()
                if go_on is not None:
                    await go_on.wait()
                upstream.requests[-1].body = await read_body(reader, head)
                writer.write(respond(b"200 OK", b"final", (b"X-Request-ID: r",)))
                await writer.drain()

        return handle

    return make


async def test_early_hints_reach_an_http11_client_before_the_final_response(
    upstream_factory, proxy_factory
):
    go_on = asyncio.Event()
    upstream = await upstream_factory(hinting(EARLY_HINTS, go_on))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /page HTTP/1.1\r\nHost: h\r\n\r\n")
    # the backend holds its final answer back until the client has the hints
    hints = await asyncio.wait_for(reader.readexactly(len(EARLY_HINTS_RELAYED)), 5)
    assert hints == EARLY_HINTS_RELAYED
    go_on.set()
    final = await asyncio.wait_for(reader.readuntil(b"final"), 5)
    writer.close()
    assert final == b"HTTP/1.1 200 OK\r\nX-Request-ID: r\r\nContent-Length: 5\r\n\r\nfinal"


async def test_one_100_continue_then_every_other_interim_response(upstream_factory, proxy_factory):
    """The proxy's own 100 goes at once; the backend's 100 is dropped, its 102 and 103 are
    relayed in order, and the connection carries on afterwards."""
    interims = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-Step: 1\r\n\r\n"
    upstream = await upstream_factory(hinting(interims + EARLY_HINTS))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /b HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    assert await asyncio.wait_for(read_head(reader), 5) == b"HTTP/1.1 100 Continue"
    writer.write(b"data")
    expected = (
        b"HTTP/1.1 102 Processing\r\nX-Step: 1\r\n\r\n"
        + EARLY_HINTS_RELAYED
        + b"HTTP/1.1 200 OK\r\nX-Request-ID: r\r\nContent-Length: 5\r\n\r\nfinal"
    )
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
    writer.write(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
    again = await asyncio.wait_for(reader.readexactly(len(expected)), 5)
    writer.close()
    assert again == expected  # no 100 for a request that did not ask
    assert upstream.requests[0].body == b"data"


async def test_no_interim_response_to_an_http10_client(upstream_factory, proxy_factory):
    interims = b"HTTP/1.1 100 Continue\r\n\r\n" + EARLY_HINTS
    upstream = await upstream_factory(hinting(interims))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /b HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"
    )
    answer = await asyncio.wait_for(reader.read(), 5)  # HTTP/1.0: the proxy closes after it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.count(b"HTTP/1.1") == 1 and b"Link" not in answer
    assert answer.endswith(b"\r\n\r\nfinal")


async def test_http10_client_expecting_100_continue_gets_none(upstream_factory, proxy_factory):
    def make(upstream):
        async def handle(reader, writer):
            head = await read_head(reader)
            upstream.requests.append(RawRequest(head, await read_body(reader, head)))
            writer.write(respond(b"201 Created", b"made"))
            await writer.drain()

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /b HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    with pytest.raises(TimeoutError):  # RFC 9110 10.1.1: never a 100 to HTTP/1.0
        await asyncio.wait_for(reader.readuntil(b"\r\n"), 0.3)
    writer.write(b"data")
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert (result.status_line, result.body) == (b"HTTP/1.1 201 Created", b"made")
    assert upstream.requests[0].body == b"data"


@pytest.mark.parametrize("status", [b"099 Too Low", b"600 Too High", b"000 Zero"])
async def test_a_status_outside_100_to_599_is_502(upstream_factory, proxy_factory, status):
    def make(upstream):
        async def handle(reader, writer):
            await read_head(reader)
            writer.write(respond(status, b"odd"))
            await writer.drain()

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert result.status_line == b"HTTP/1.1 502 Bad Gateway"
    assert result.header(b"Content-Type") == b"application/json"
    envelope = json.loads(result.body)
    assert envelope["http_status_code"] == 502 and envelope["errors"] == []
    assert b"odd" not in result.body and str(upstream.port).encode() not in result.body
    labels = {"backend": "app", "kind": "protocol"}
    assert proxy.state.registry.get_sample_value("strangler_upstream_errors_total", labels) == 1


def test_name_sizes_has_a_bit_for_each_length_and_none_other() -> None:
    assert name_sizes([b"te", b"upgrade", b"trailer"]) == (1 << 2) | (1 << 7)
    assert name_sizes([]) == 0
    request_names = DROPPED | FORWARDED | {b"host", b"x-request-id"}
    for sizes, names in (
        (REQUEST_NAME_SIZES, request_names),
        (RESPONSE_NAME_SIZES, HOP_BY_HOP | {b"x-request-id"}),
    ):
        checked = {len(name) for name in names}
        for size in range(300):  # a long name shifts every bit out: never checked
            assert sizes >> size & 1 == (size in checked), size
