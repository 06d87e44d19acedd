"""proxy/dataplane/_heads.pyx against proxy/dataplane/heads.py: the same bytes, flags and request
id for the same messages. heads.py is the source of truth (its own tests say what the heads must
be); this says the C module is the same function.

The messages are drawn from every name either function treats apart (in several spellings),
values that name other headers in `Connection`, and the flags that change a head: thousands of
seeded random cases, then the edges one by one. Runs in both of CI's passes: the compiled hot path
and its Python source (`STRANGLER_NO_EXTENSIONS=1`), so `_heads` is compared with both.
"""

from __future__ import annotations

import importlib
import os
import random
import re
from types import ModuleType, SimpleNamespace

import pytest

import proxy
from proxy import speedups
from proxy.dataplane import heads
from proxy.http import scan
from proxy.http.exchange import Response
from proxy.http.messages import Request
from proxy.http.streams import BodyStream
from proxy.routing.model import Backend

NAMES = [
    b"Host", b"host", b"HOST", b"X-Request-ID", b"x-request-id", b"Connection", b"connection",
    b"Keep-Alive", b"TE", b"Transfer-Encoding", b"Upgrade", b"Trailer", b"Proxy-Connection",
    b"Proxy-Authorization", b"Proxy-Authenticate", b"X-Strangler-Force", b"SCRIPT_NAME",
    b"path_info", b"HTTP2-Settings", b"X-Strangler-Shadow", b"x-strangler-signature",
    b"X-Forwarded-For", b"x-forwarded-proto", b"X-Forwarded-Host", b"Forwarded", b"Accept",
    b"Content-Type", b"Content-Length", b"X-Foo", b"x-bar", b"Close", b"Set-Cookie", b"A",
    b"X-" + b"Long" * 20, b"X-\xc3\xa9t\xc3\xa9",
]  # fmt: skip
VALUES = [
    b"", b"1", b"example.org", b"keep-alive", b"close", b"Close, X-Foo", b"x-bar, te",
    b"upgrade", b"10.0.0.1", b"https", b"a" * 300, b"\xff\x00 odd", b"for=1.2.3.4",
]  # fmt: skip
BACKEND = Backend("drf", "http://127.0.0.1:8001", "http", "127.0.0.1", 8001)
NEW_ID = re.compile(rb"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def fast() -> ModuleType:
    """The C module; a build without it fails here in CI (it must be built there)."""
    built = speedups.built("proxy.dataplane._heads")
    if not built and not os.environ.get("CI"):
        pytest.skip("proxy/dataplane/_heads is not built (no Cython or no C compiler)")
    return importlib.import_module("proxy.dataplane._heads")


def random_headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    return [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randrange(0, 12))]


def request(rng: random.Random, headers: list[tuple[bytes, bytes]], request_id: bytes) -> Request:
    made = Request(
        rng.choice(["GET", "POST", "PURGE", "M-SEARCH"]),
        rng.choice([b"/", b"/bookings/1?expand=all", b"*", b"/%7e/\xff"]),
        rng.choice(["1.1", "1.0"]),
        headers,
        rng.choice(["127.0.0.1", "::1", "10.1.2.3"]),
        rng.random() < 0.5,
        rng.random() < 0.7,
        chunked=rng.random() < 0.2,
        connection=any(name.lower() == b"connection" for name, _ in headers),
        upgrade=rng.choice([None, None, None, b"websocket"]),
    )
    made.request_id = request_id
    return made


def same_request_heads(fast: ModuleType, seed: int) -> None:
    rng = random.Random(seed)
    headers = random_headers(rng)
    given = rng.choice([b"", b"", b"abc-123"])
    state = rng.getstate()
    ours, theirs = request(rng, headers, given), None
    rng.setstate(state)
    theirs = request(rng, list(headers), given)
    expected = heads.request_head(ours, BACKEND)
    got = fast.request_head(theirs, BACKEND)
    if ours.request_id != theirs.request_id:  # both new: random, so compared by their place
        assert not given and NEW_ID.match(ours.request_id) and NEW_ID.match(theirs.request_id)
        expected = expected.replace(ours.request_id, b"<new>")
        got = got.replace(theirs.request_id, b"<new>")
    assert got == expected, (seed, headers)


def same_response_heads(fast: ModuleType, seed: int) -> None:
    rng = random.Random(seed)
    headers = random_headers(rng)
    connection = frozenset()
    for name, value in headers:
        if name.lower() == b"connection":
            connection |= frozenset(t.strip() for t in value.lower().split(b",")) - {b"close"}
    response = Response(
        rng.choice([200, 204, 304, 404, 599, 299]),
        rng.choice([b"OK", b"", b"Not Found", b"\xe9"]),
        headers,
        BodyStream(None),  # type: ignore[arg-type]  # never read here
        rng.random() < 0.8,
        rng.random() < 0.8,
        sized=rng.random() < 0.6,
        chunked=rng.random() < 0.3,
        connection=connection,
    )
    client = request(rng, [], rng.choice([b"", b"abc-123"]))
    draining = rng.random() < 0.1
    expected = heads.response_head(response, client, draining)
    got = fast.response_head(response, client, draining)
    assert got == expected, (seed, headers)
    assert [type(x) for x in got] == [bytes, bool, bool]


def read_whole(rng: random.Random) -> tuple[Response, Response] | None:
    """A response head `scan` reads whole, as a Response of its lines and as one of the pairs
    httptools gives (none if scan declines the generated head)."""
    fields = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randrange(0, 8))]
    raw = b"".join(b"%b: %b\r\n" % pair for pair in fields)
    head = scan.response_head(b"HTTP/1.1 200 OK\r\n" + raw + b"Content-Length: 0\r\n\r\n", 65536)
    if head is None:
        return None
    status, reason, lines, hop_start, hop_end, echoed, keep_alive, length, _ = head
    body = BodyStream(None)  # type: ignore[arg-type]  # never read here
    parsed = Response(status, reason, scan.pairs(lines), body, True, keep_alive, sized=True)
    whole = Response(
        status, reason, None, body, True, keep_alive, sized=True, lines=lines,
        hop=(hop_start, hop_end), echoed=echoed,
    )  # fmt: skip
    return whole, parsed


def test_a_response_read_whole_gets_the_head_its_pairs_get(fast: ModuleType) -> None:
    """Copied as bytes around its Connection line, or written from its pairs: the same head."""
    rng = random.Random(99)
    compared = 0
    for _ in range(6000):
        both = read_whole(rng)
        if both is None:
            continue
        whole, parsed = both
        client = request(rng, [], rng.choice([b"", b"abc-123"]))
        draining = rng.random() < 0.1
        expected = heads.response_head(parsed, client, draining)
        assert heads.response_head(whole, client, draining) == expected
        assert fast.response_head(whole, client, draining) == expected
        assert whole.headers == parsed.headers
        compared += 1
    assert compared > 1000


def test_request_heads_are_the_same_bytes(fast: ModuleType) -> None:
    for seed in range(4000):
        same_request_heads(fast, seed)


def test_response_heads_are_the_same_bytes(fast: ModuleType) -> None:
    for seed in range(4000):
        same_response_heads(fast, seed)


MESSAGE_FIELDS = {
    Request: (
        "method", "target", "version", "headers", "peer", "trusted", "keep_alive", "body",
        "chunked", "connection", "request_id", "length", "upgrade",
    ),
    Response: (
        "status", "reason", "headers", "body", "has_body", "keep_alive", "sized", "chunked",
        "connection", "lines", "hop_start", "hop_end", "echoed",
    ),
}  # fmt: skip


def copy_of(message: object) -> SimpleNamespace:
    """An object of another class with the same attributes: the twin reads it by name."""
    names = MESSAGE_FIELDS[type(message)]
    return SimpleNamespace(**{name: getattr(message, name) for name in names})


def test_objects_of_other_classes_are_read_by_name(fast: ModuleType) -> None:
    """The twin reads a Request or Response through the classes' own descriptors; anything else
    that has their attributes is read by name, to the same bytes."""
    headers = [(b"Host", b"api"), (b"Connection", b"X-Foo"), (b"X-Foo", b"1"), (b"A", b"b")]
    made = Request("PUT", b"/x", "1.0", headers, "10.0.0.1", True, True, chunked=True)
    made.connection, made.upgrade = True, b"websocket"
    made.request_id = b"abc"
    duck = copy_of(made)
    assert fast.request_head(duck, BACKEND) == fast.request_head(made, BACKEND)
    assert fast.request_head(made, BACKEND) == heads.request_head(made, BACKEND)
    fresh = copy_of(Request("GET", b"/", "1.1", [], "::1", False, True))
    fast.request_head(fresh, BACKEND)
    assert NEW_ID.match(fresh.request_id)  # set by name too
    response = Response(
        404,
        b"Nope",
        headers,
        BodyStream(None),
        True,
        False,
        True,
        False,
        frozenset({b"x-foo"}),  # type: ignore[arg-type]
    )
    expected = heads.response_head(response, made, False)
    assert fast.response_head(copy_of(response), duck, False) == expected
    assert fast.response_head(response, made, False) == expected


def test_a_head_past_the_stack_buffer_is_whole(fast: ModuleType) -> None:
    headers = [(b"X-Big-%d" % i, b"v" * 100) for i in range(200)]  # about 22 KB of head
    ours = Request("GET", b"/", "1.1", headers, "127.0.0.1", False, True)
    theirs = Request("GET", b"/", "1.1", list(headers), "127.0.0.1", False, True)
    ours.request_id = theirs.request_id = b"id"
    head = fast.request_head(theirs, BACKEND)
    assert head == heads.request_head(ours, BACKEND)
    assert len(head) > 20_000 and head.count(b"v" * 100) == 200
    response = Response(200, b"OK", headers, BodyStream(None), True, True, sized=True)  # type: ignore[arg-type]
    assert fast.response_head(response, ours, False) == heads.response_head(response, ours, False)


def test_a_request_without_host_gets_the_backends_first(fast: ModuleType) -> None:
    request = Request("GET", b"/x", "1.0", [(b"Accept", b"*/*")], "10.0.0.9", False, False)
    request.request_id = b"r1"
    assert fast.request_head(request, BACKEND) == (
        b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nAccept: */*\r\nX-Request-ID: r1\r\n"
        b"X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: 127.0.0.1:8001\r\n\r\n"
    )


def test_new_request_ids_are_32_hex_digits_and_never_repeat(fast: ModuleType) -> None:
    ids = [fast.new_request_id() for _ in range(3000)]  # past one pool of 256
    assert all(NEW_ID.match(one) for one in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_its_own_ids(fast: ModuleType) -> None:
    fast.new_request_id()  # the pool is filled
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(writer, fast.new_request_id())
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 64)
    os.close(reader)
    os.waitpid(pid, 0)
    assert NEW_ID.match(child) and child != fast.new_request_id()


def test_the_forwarder_writes_with_the_twins_where_the_hot_path_is_compiled() -> None:
    request_writer, response_writer = heads.writers()
    module = "proxy.dataplane._heads" if proxy.HOT_PATH_MODE == "compiled" else heads.__name__
    assert (request_writer.__module__, response_writer.__module__) == (module, module)


def test_a_header_that_is_not_bytes_is_refused(fast: ModuleType) -> None:
    request = Request("GET", b"/", "1.1", [("Host", "x")], "127.0.0.1", False, True)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        fast.request_head(request, BACKEND)
