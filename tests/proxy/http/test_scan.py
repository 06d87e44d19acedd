"""proxy/http/scan.py, the one-call reading of whole heads, held to httptools: for every read it
accepts, httptools parses the same bytes into the same message (method, target, version, headers
in order, keep-alive; status, reason and body for a response), with nothing left over. What it
declines goes to httptools anyway, so declining is always safe; accepting is what is tested.

The reads are generated: heads assembled from the parts either parser treats apart (methods,
targets, versions, the framing and connection headers, odd bytes, bare line ends, extra bytes
after the head), some with a random byte changed. Then the C twin (proxy/http/_scan.pyx) is held
to scan.py on the same reads, where it is built (and in CI, always).
"""

from __future__ import annotations

import importlib
import os
import random
from types import ModuleType
from typing import Any, TypeVar

import httptools
import pytest

import proxy
from proxy import speedups
from proxy.http import scan
from proxy.http.messages import HOP_BY_HOP

T = TypeVar("T")
LIMITS = (8192, 8192, 65536)  # request line, one field, all fields (the listener's defaults)
MAX_HEAD = 65536

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"PURGE", b"get"]
TARGETS = [
    b"/", b"/bookings/1?expand=all&x=%7e", b"/:@!$&'()*+,;=-._~", b"/a#frag", b"*", b"http://x/y",
    b"/a b", b"/\x80", b"/a\x7f", b'/"q"', b"/" + b"p" * 40, b"",
]  # fmt: skip
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"http/1.1", b"HTTP/1.2"]
NAMES = [
    b"Host", b"Accept", b"X-Foo", b"User-Agent", b"Connection", b"connection", b"X-Request-ID",
    b"host", b"HOST", b"Content-Length", b"content-length", b"Transfer-Encoding", b"Upgrade",
    b"Proxy-Connection", b"Keep-Alive", b"Bad Name", b"X\x80", b"", b"Expect", b"TE", b"Trailer",
    b"Proxy-Authenticate", b"x-request-id",
]  # fmt: skip
VALUES = [
    b"keep-alive", b"example.org", b"a\tb", b"*/*", b"close", b"Keep-Alive", b"CLOSE", b"",
    b" lead", b"trail ", b"x\x80y", b"x\x7fy", b"upgrade", b"close, x-foo", b"5", b"05", b"-1",
    b"1 ", b"0", b"chunked", b"99999999999999999999", b"a" * 50,
]  # fmt: skip
SEPARATORS = [b": ", b":", b":\t", b":  ", b" : ", b": \t "]
STATUS_LINES = [
    b"HTTP/1.1 200 OK", b"HTTP/1.1 201 Created", b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 100 Continue", b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.0 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.1 999 Odd",
    b"HTTP/1.1 404 Not\x80Found", b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 20 Short",
]  # fmt: skip


def pick(rng: random.Random, options: list[T], usual: int) -> T:
    """Mostly one of the first `usual` options (those a fast path may take), else any."""
    return rng.choice(options[:usual] if rng.random() < 0.85 else options)


def field_lines(rng: random.Random, hosts: int) -> bytes:
    fields = [(b"Host", b"example.org")] * hosts
    fields += [(pick(rng, NAMES, 7), pick(rng, VALUES, 4)) for _ in range(rng.randrange(0, 6))]
    rng.shuffle(fields)
    ends = [b"\r\n", b"\n", b"\r", b"\r\n "]
    return b"".join(
        name + pick(rng, SEPARATORS, 4) + value + pick(rng, ends, 1) for name, value in fields
    )


def mutated(rng: random.Random, data: bytes) -> bytes:
    if data and rng.random() < 0.2:
        at = rng.randrange(len(data))
        data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if data and rng.random() < 0.1:
        data = data[: rng.randrange(len(data))]
    return data


def random_request(rng: random.Random) -> bytes:
    line = pick(rng, METHODS, 7) + b" " + pick(rng, TARGETS, 3) + b" " + pick(rng, VERSIONS, 2)
    head = line + b"\r\n" + field_lines(rng, pick(rng, [1, 0, 2], 1)) + b"\r\n"
    after = pick(rng, [b"", b"x", b"\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"], 1)
    return mutated(rng, head + after)


def random_response(rng: random.Random) -> bytes:
    body = b"b" * rng.randrange(0, 8)
    fields = field_lines(rng, 0)
    if rng.random() < 0.7:
        fields += b"Content-Length: %d\r\n" % rng.choice([len(body), len(body) + 3, 0, 2])
    head = pick(rng, STATUS_LINES, 4) + b"\r\n" + fields + b"\r\n"
    return mutated(rng, head + body)


class Gathered:
    """What httptools' callbacks give for one read: the reference."""

    def __init__(self) -> None:
        self.begun = self.completed = 0
        self.url = self.reason = self.body = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.at_head: tuple[Any, ...] | None = None
        self.parser: Any = None

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        if isinstance(parser, httptools.HttpRequestParser):
            self.at_head = (parser.get_method(), parser.get_http_version())
        else:
            self.at_head = (parser.get_status_code(),)
        self.at_head += (parser.should_keep_alive(), parser.should_upgrade())

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.completed += 1


def gathered(parser_type: Any, data: bytes) -> Gathered:
    found = Gathered()
    found.parser = parser_type(found)
    found.parser.feed_data(data)  # raises for what llhttp refuses
    return found


def agrees_on_request(data: bytes, accepted: scan.RequestHead) -> None:
    method, target, version, headers, keep_alive, connection = accepted
    found = gathered(httptools.HttpRequestParser, data)
    assert (found.begun, found.completed) == (1, 1)
    assert found.at_head == (method.encode(), version, keep_alive, False)
    assert (found.url, found.headers) == (target, headers)
    assert found.body == b""
    names = [name.lower() for name, _ in headers]
    assert names.count(b"host") == 1
    assert connection == (b"connection" in names)


def agrees_on_response(data: bytes, accepted: scan.ResponseHead) -> None:
    status, reason, lines, hop_start, hop_end, echoed, keep_alive, length, end = accepted
    headers = scan.pairs(lines)
    found = gathered(httptools.HttpResponseParser, data)
    assert found.begun == 1
    assert found.at_head == (status, keep_alive, False)
    assert (found.reason, found.headers) == (reason, headers)
    assert lines == data[data.index(b"\r\n") + 2 : end - 2]  # the field lines as they came
    names = [name.lower() for name, _ in headers]
    assert not set(names) & (HOP_BY_HOP - {b"connection"})  # copied to the client around one:
    if b"connection" in names:
        assert lines[hop_start:hop_end].lower().startswith(b"connection:")
        assert lines[hop_start:hop_end].endswith(b"\r\n")
        assert lines[:hop_start].count(b"\r\n") == names.index(b"connection")
    else:
        assert (hop_start, hop_end) == (0, 0)
    assert echoed == (b"x-request-id" in names)
    if status in (204, 304):
        assert (found.completed, end) == (1, len(data))
    else:
        assert found.body == data[end:]
        assert found.completed == (1 if len(data) - end == length else 0)
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    assert length == (int(lengths[0]) if lengths else -1)


def test_requests_it_accepts_read_as_httptools_reads_them() -> None:
    rng = random.Random(1729)
    accepted = 0
    for _ in range(20000):
        data = random_request(rng)
        head = scan.request_head(data, LIMITS)
        if head is not None:
            agrees_on_request(data, head)
            accepted += 1
    assert accepted > 2000  # the generator reaches the fast path, not only its refusals


def test_responses_it_accepts_read_as_httptools_reads_them() -> None:
    rng = random.Random(1730)
    accepted = 0
    for _ in range(20000):
        data = random_response(rng)
        head = scan.response_head(data, MAX_HEAD)
        if head is not None:
            agrees_on_response(data, head)
            accepted += 1
    assert accepted > 1000


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            b"GET /a?b=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n",
            (
                "GET",
                b"/a?b=1",
                "1.1",
                [(b"Host", b"example.org"), (b"Accept", b"*/*")],
                True,
                False,
            ),
        ),
        (
            b"DELETE / HTTP/1.0\r\nhost:\tx\r\nConnection: Keep-Alive\r\n\r\n",
            ("DELETE", b"/", "1.0", [(b"host", b"x"), (b"Connection", b"Keep-Alive")], True, True),
        ),
        (
            b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
            ("GET", b"/", "1.0", [(b"Host", b"x")], False, False),
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ("GET", b"/", "1.1", [(b"Host", b"x"), (b"Connection", b"close")], False, True),
        ),
    ],
)
def test_request_heads_read(data: bytes, expected: scan.RequestHead) -> None:
    assert scan.request_head(data, LIMITS) == expected
    agrees_on_request(data, expected)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # cut short
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n",  # pipelined: httptools' job
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",  # framing: httptools'
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Foo\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  # the 400 is the listener's
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x \r\n\r\n",  # trailing whitespace: llhttp keeps it
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",  # obs-text
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PURGE / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # over the line limit
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 8190 + b"\r\n\r\n",  # over the field limit
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 100 + b"\r\n",  # over the field count
    ],
)
def test_request_heads_left_to_httptools(data: bytes) -> None:
    assert scan.request_head(data, LIMITS) is None


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhel",
            (200, b"OK", b"Content-Length: 5\r\nServer: x\r\n", 0, 0, False, True, 5, 49),
        ),
        (
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 02\r\nConnection: Close\r\n\r\nhi",
            (
                404,
                b"Not Found",
                b"content-length: 02\r\nConnection: Close\r\n",
                20,
                39,
                False,
                False,
                2,
                65,
            ),
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", (204, b"No Content", b"", 0, 0, False, True, -1, 27)),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            (304, b"Not Modified", b"Content-Length: 9\r\n", 0, 0, False, True, 9, 48),
        ),
        (
            b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
            (200, b"", b"Content-Length: 0\r\n", 0, 0, False, True, 0, 36),
        ),
        (
            b"HTTP/1.1 200 OK\r\nServer: x\r\nconnection: Close\r\nX-Request-ID: 7\r\n"
            b"x-request-id: 8\r\nContent-Length: 2\r\n\r\nhi",
            (
                200,
                b"OK",
                b"Server: x\r\nconnection: Close\r\nX-Request-ID: 7\r\nx-request-id: 8\r\n"
                b"Content-Length: 2\r\n",
                11,
                30,
                True,
                False,
                2,
                102,
            ),
        ),
    ],
)
def test_response_heads_read(data: bytes, expected: scan.ResponseHead) -> None:
    assert scan.response_head(data, MAX_HEAD) == expected
    agrees_on_response(data, expected)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",  # cut short
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi!",  # bytes after the body
        b"HTTP/1.1 204 No Content\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nh",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1 \r\n\r\nh",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive, X-Foo\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTE: trailers\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTrailer: X-Sum\r\n\r\n",
        b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\nProxy-Authenticate: Basic\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nProxy-Authorization: x\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: caf\xc3\xa9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"A: b\r\n" * 100 + b"\r\n",
    ],
)
def test_response_heads_left_to_httptools(data: bytes) -> None:
    assert scan.response_head(data, MAX_HEAD) is None


def test_a_response_read_whole_has_no_hop_by_hop_line_but_connection() -> None:
    """Its field lines go to the client as they came, around the Connection line."""
    assert HOP_BY_HOP - {b"connection"} <= scan.RESPONSE_REFUSED


def test_a_response_head_over_the_cap_is_left_to_httptools() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert scan.response_head(data, len(data)) is not None
    assert scan.response_head(data, len(data) - 1) is None


@pytest.fixture(scope="module")
def twin() -> ModuleType:
    """The C twin; a build without it fails here in CI (it must be built there)."""
    if not speedups.built("proxy.http._scan") and not os.environ.get("CI"):
        pytest.skip("proxy/http/_scan is not built (no Cython or no C compiler)")
    return importlib.import_module("proxy.http._scan")


def test_the_c_twin_reads_requests_as_scan_py(twin: ModuleType) -> None:
    rng = random.Random(2718)
    for _ in range(20000):
        data = random_request(rng)
        limits = rng.choice([LIMITS, (4, 8192, 65536), (8192, 20, 65536), (8192, 8192, 40)])
        assert twin.request_head(data, limits) == scan.request_head(data, limits), data


def test_the_c_twin_reads_responses_as_scan_py(twin: ModuleType) -> None:
    rng = random.Random(2719)
    for _ in range(20000):
        data = random_response(rng)
        cap = rng.choice([MAX_HEAD, 30, 60])
        assert twin.response_head(data, cap) == scan.response_head(data, cap), data


def test_the_fast_path_runs_where_the_hot_path_is_compiled() -> None:
    request_reader, response_reader = scan.readers()
    if proxy.HOT_PATH_MODE == "compiled":
        assert request_reader is not None and response_reader is not None
        assert (request_reader.__module__, response_reader.__module__) == ("proxy.http._scan",) * 2
    else:
        assert (request_reader, response_reader) == (None, None)


def test_the_twin_refuses_what_is_not_bytes(twin: ModuleType) -> None:
    with pytest.raises(TypeError):
        twin.request_head("GET / HTTP/1.1\r\nHost: x\r\n\r\n", LIMITS)
    with pytest.raises(TypeError):
        twin.response_head(bytearray(b"HTTP/1.1 204 No Content\r\n\r\n"), MAX_HEAD)


def test_a_hundred_field_lines_are_read_and_one_more_is_not() -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 99 + b"\r\n"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"A: b\r\n" * 99 + b"\r\n"
    head = scan.request_head(request, LIMITS)
    assert head is not None and len(head[3]) == 100
    agrees_on_request(request, head)
    answer = scan.response_head(response, MAX_HEAD)
    assert answer is not None and len(scan.pairs(answer[2])) == 100
    agrees_on_response(response, answer)
    one_more = request[:-2] + b"A: b\r\n\r\n"
    assert scan.request_head(one_more, LIMITS) is None
    assert scan.response_head(response[:-2] + b"A: b\r\n\r\n", MAX_HEAD) is None


def test_the_c_twin_reads_a_hundred_field_lines_and_not_one_more(twin: ModuleType) -> None:
    for count in (99, 100):
        request = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * count + b"\r\n"
        response = b"HTTP/1.1 204 No Content\r\n" + b"Date: now\r\n" * (count + 1) + b"\r\n"
        assert twin.request_head(request, LIMITS) == scan.request_head(request, LIMITS)
        assert twin.response_head(response, MAX_HEAD) == scan.response_head(response, MAX_HEAD)


def test_the_twin_hands_out_one_object_for_a_common_name_and_its_repeated_value(
    twin: ModuleType,
) -> None:
    """Bytes are immutable: a common name, and a value its last field had, are one object."""
    first = twin.request_head(b"GET / HTTP/1.1\r\nHost: api\r\nX-Foo: 12\r\n\r\n", LIMITS)
    again = twin.request_head(b"GET /b HTTP/1.1\r\nHost: api\r\nX-Foo: 12\r\n\r\n", LIMITS)
    other = twin.request_head(b"GET / HTTP/1.1\r\nHost: apj\r\n\r\n", LIMITS)
    assert first[3] == again[3] == [(b"Host", b"api"), (b"X-Foo", b"12")]
    assert first[3][0][0] is again[3][0][0] and first[3][0][1] is again[3][0][1]
    assert first[3][1][1] is not again[3][1][1]  # not a common name: a new object each time
    assert other[3] == [(b"Host", b"apj")] and first[3][0][1] == b"api"


def test_the_twin_keeps_no_credential_from_one_request_to_the_next(twin: ModuleType) -> None:
    data = b"GET / HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer s3cret\r\nCookie: id=1\r\n\r\n"
    first, again = twin.request_head(data, LIMITS), twin.request_head(data, LIMITS)
    assert first[3] == again[3]
    assert first[3][1][1] is not again[3][1][1] and first[3][2][1] is not again[3][2][1]
