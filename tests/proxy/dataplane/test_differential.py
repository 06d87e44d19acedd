"""Differential tests: the same raw request bytes to httpbin under gunicorn, directly and through
a real proxy process, must get the same answer.

Same status line, the same header lines in the same order with the same repetitions, the same
body bytes, the same connection persistence, once the differences the proxy documents are taken
out (see `expected_view` and `proxied_view` in differential_fixtures.py): its X-Request-ID, its
own hop-by-hop fields and body framing, its HTTP/1.1 status line to an HTTP/1.0 client, and the
X-Forwarded-* and X-Request-ID request headers it adds where httpbin echoes request headers in a
JSON body. Date and a gzip body's MTIME change with the clock and are compared as placeholders.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.proxy.dataplane.differential_fixtures import (
    HOST,
    Case,
    Servers,
    Step,
    chunked,
    converse,
    expected_view,
    proxied_view,
    request,
    serve_httpbin,
)

H = b"Host: " + HOST
FORM = b"name=strangler&tags=a&tags=b&empty=&note=caf%C3%A9+%26+more"
JSON = b'{"id": 7, "name": "caf\xc3\xa9", "list": [1, 2, 3], "nested": {"ok": true}}'
BINARY = bytes(range(256)) * 16
BOUNDARY = b"d1ff3r3nt1al"
MULTIPART = b"".join(
    (
        b"--%b\r\n" % BOUNDARY,
        b'Content-Disposition: form-data; name="field"\r\n\r\n',
        b"value\r\n",
        b"--%b\r\n" % BOUNDARY,
        b'Content-Disposition: form-data; name="upload"; filename="bytes.bin"\r\n',
        b"Content-Type: application/octet-stream\r\n\r\n",
        bytes(range(256)),
        b"\r\n--%b--\r\n" % BOUNDARY,
    )
)
MULTIPART_TYPE = b"Content-Type: multipart/form-data; boundary=" + BOUNDARY
# For HEAD and compressed bodies, which cannot be edited to take the proxy's X-Forwarded-Host
# out: the client sends the value the proxy sets (it replaces an untrusted client's own), and
# httpbin's sorted JSON then echoes the same bytes both ways.
SAME_FORWARDED_HOST = b"X-Forwarded-Host: " + HOST


def one(name: str, data: bytes, echoes: int = 0, env: bool = False) -> Case:
    return Case(name, (Step(data, echoes, env),))


def call(method: bytes, target: bytes, *headers: bytes) -> bytes:
    return request(method + b" " + target + b" HTTP/1.1", H, *headers)


def get(target: bytes, *headers: bytes) -> bytes:
    return call(b"GET", target, *headers)


def head(target: bytes, *headers: bytes) -> bytes:
    return call(b"HEAD", target, *headers)


def sized(
    method: bytes, target: bytes, body: bytes, *headers: bytes, version: bytes = b"HTTP/1.1"
) -> bytes:
    line = b" ".join((method, target, version))
    return request(line, H, *headers, b"Content-Length: %d" % len(body), body=body)


def chunks(method: bytes, target: bytes, body: bytes, *headers: bytes) -> bytes:
    line = method + b" " + target + b" HTTP/1.1"
    return request(line, H, *headers, CHUNKED, body=chunked(body))


def http10(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    """An HTTP/1.0 request without a body; Host only if `headers` has one."""
    return request(method + b" " + target + b" HTTP/1.0", *headers)


JSON_TYPE = b"Content-Type: application/json"
FORM_TYPE = b"Content-Type: application/x-www-form-urlencoded"
OCTETS = b"Content-Type: application/octet-stream"
KEEP_ALIVE = b"Connection: keep-alive"
CHUNKED = b"Transfer-Encoding: chunked"
# A chunk extension and a trailer field: gunicorn ignores both, the proxy re-frames.
EXTENDED_CHUNKS = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"

METHODS = [
    one("method-get", get(b"/anything?a=1&a=2&b=%20x", b"X-Dup: 1", b"X-Dup: 2"), 1),
    one("method-head", head(b"/anything", SAME_FORWARDED_HOST)),
    one("method-post", sized(b"POST", b"/anything", JSON, JSON_TYPE), 1),
    one("method-put", sized(b"PUT", b"/anything/x", JSON, JSON_TYPE), 1),
    one("method-patch", sized(b"PATCH", b"/anything", FORM, FORM_TYPE), 1),
    one("method-delete", call(b"DELETE", b"/anything?id=3"), 1),
    one("method-options", call(b"OPTIONS", b"/anything")),
    one("method-options-asterisk", call(b"OPTIONS", b"*")),
    one("method-trace", call(b"TRACE", b"/anything"), 1),
    one("method-extension-purge", call(b"PURGE", b"/anything")),
    one("method-extension-custom", call(b"FROBNICATE", b"/anything")),
]

STATUS = [
    one(f"status-{code}", get(b"/status/%d" % code))
    for code in (200, 201, 204, 304, 400, 404, 418, 500, 503, 301, 302, 303, 307, 308)
] + [
    one("status-post-201", sized(b"POST", b"/status/201", FORM, FORM_TYPE)),
    one("status-head-418", head(b"/status/418")),
    one("status-etag-304", get(b"/etag/abc", b'If-None-Match: "x", abc')),
    one("status-etag-412", get(b"/etag/abc", b"If-Match: other")),
    one("status-cache-304", get(b"/cache", b"If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT")),
    one("status-405", get(b"/post")),
]

REDIRECTS = [
    one("redirect-n", get(b"/redirect/3")),
    one("redirect-last", get(b"/redirect/1")),
    one("redirect-absolute-param", get(b"/redirect/2?absolute=true")),
    one("redirect-relative", get(b"/relative-redirect/2")),
    one("redirect-absolute", get(b"/absolute-redirect/2")),
    one("redirect-to-path", get(b"/redirect-to?url=/get")),
    one(
        "redirect-to-url-307", get(b"/redirect-to?url=http%3A%2F%2Fexample.test%2F&status_code=307")
    ),
    one("redirect-to-post-303", sized(b"POST", b"/redirect-to?url=/get&status_code=303", FORM)),
]

COOKIES = [
    one("cookies-set-several", get(b"/cookies/set?a=1&b=two&c=%22q%22")),
    one("cookies-set-path", get(b"/cookies/set/name/value")),
    one("cookies-read", get(b"/cookies", b"Cookie: a=1; b=two", b"Cookie: c=3")),
    one("cookies-delete", get(b"/cookies/delete?a&b", b"Cookie: a=1; b=2")),
    one("cookies-response-headers", get(b"/response-headers?Set-Cookie=x%3D1&Set-Cookie=y%3D2")),
]

ACCEPT_ENCODING = b"Accept-Encoding: gzip, deflate, br"
COMPRESSION = [
    one(f"compression-{path}", get(b"/" + path.encode(), ACCEPT_ENCODING, SAME_FORWARDED_HOST))
    for path in ("gzip", "deflate", "brotli")
] + [
    one("compression-head-gzip", head(b"/gzip", ACCEPT_ENCODING, SAME_FORWARDED_HOST)),
]

RANGES = [
    one("range-whole", get(b"/range/1024")),
    one("range-first", get(b"/range/1024", b"Range: bytes=0-99")),
    one("range-open", get(b"/range/1024", b"Range: bytes=1000-")),
    one("range-suffix", get(b"/range/1024", b"Range: bytes=-24")),
    one("range-chunked", get(b"/range/1024?chunk_size=100", b"Range: bytes=10-509")),
    one("range-416", get(b"/range/1024", b"Range: bytes=2000-3000")),
    one("range-head", head(b"/range/1024", b"Range: bytes=0-9")),
]

STREAMING = [
    one("stream-json", get(b"/stream/3"), 3),
    one("stream-bytes", get(b"/stream-bytes/20000?seed=3&chunk_size=4096")),
    one("stream-drip", get(b"/drip?duration=0.1&numbytes=5&delay=0")),
    one("stream-drip-code", get(b"/drip?duration=0&numbytes=3&delay=0&code=503")),
    one("stream-head", head(b"/stream/2")),
    one("stream-json-http10", http10(b"/stream/2", H), 2),
    one("stream-bytes-http10", http10(b"/stream-bytes/5000?seed=4&chunk_size=999", H)),
]

UPLOADS = [
    one("upload-form-length", sized(b"POST", b"/post", FORM, FORM_TYPE), 1),
    one("upload-form-chunked", chunks(b"POST", b"/post", FORM, FORM_TYPE), 1),
    one("upload-multipart-length", sized(b"POST", b"/post", MULTIPART, MULTIPART_TYPE), 1),
    one("upload-multipart-chunked", chunks(b"POST", b"/post", MULTIPART, MULTIPART_TYPE), 1),
    one("upload-binary-length", sized(b"POST", b"/anything", BINARY, OCTETS), 1),
    one("upload-binary-chunked", chunks(b"PUT", b"/anything", BINARY, OCTETS), 1),
    one("upload-json-put", sized(b"PUT", b"/put", JSON, JSON_TYPE), 1),
    one("upload-json-patch-chunked", chunks(b"PATCH", b"/patch", JSON, JSON_TYPE), 1),
    one("upload-empty", sized(b"POST", b"/post", b""), 1),
    one("upload-large-chunked", chunks(b"POST", b"/anything", BINARY * 25, OCTETS), 1),
    one("upload-chunk-extension-trailer", call(b"POST", b"/post", CHUNKED) + EXTENDED_CHUNKS, 1),
]

HTTP10 = [
    one("http10-host", http10(b"/get?x=1", H), 1),
    one("http10-no-host", http10(b"/robots.txt")),
    one("http10-no-host-absolute-redirect", http10(b"/absolute-redirect/1")),
    one("http10-post", sized(b"POST", b"/post", FORM, FORM_TYPE, version=b"HTTP/1.0"), 1),
    one("http10-head", http10(b"/html", H, method=b"HEAD")),
    one("http10-status-204", http10(b"/status/204", H)),
    Case(
        "http10-keep-alive",
        (
            Step(http10(b"/robots.txt", H, KEEP_ALIVE)),
            Step(http10(b"/bytes/2000?seed=1", H, KEEP_ALIVE)),
            Step(http10(b"/html", H, KEEP_ALIVE, method=b"HEAD")),
            Step(http10(b"/status/204", H, KEEP_ALIVE)),
            Step(sized(b"POST", b"/status/201", b"abc", KEEP_ALIVE, version=b"HTTP/1.0")),
            Step(http10(b"/stream-bytes/3000?seed=2", H, KEEP_ALIVE)),  # unsized: closes
        ),
    ),
    one("http10-keep-alive-no-host", http10(b"/status/418", KEEP_ALIVE)),
]

BODIES = [
    one("head-html", head(b"/html")),
    one("head-bytes", head(b"/bytes/100?seed=1")),
    one("head-get", head(b"/get", SAME_FORWARDED_HOST)),
    one("large-bytes", get(b"/bytes/100000?seed=7")),
    one("large-stream-bytes", get(b"/stream-bytes/100000?seed=7&chunk_size=10000")),
    one("large-bytes-http10", http10(b"/bytes/100000?seed=8", H)),
    one("body-utf8", get(b"/encoding/utf8")),
    one("body-png", get(b"/image/png")),
    one("body-base64", get(b"/base64/ZGlmZmVyZW50aWFs")),
]

HEADERS = [
    one("headers-show-env", get(b"/headers?show_env=1", b"User-Agent: differential/1"), 1, True),
    one("headers-client-request-id", get(b"/get", b"X-Request-ID: client-chosen-id"), 1),
    one("headers-connection-close", get(b"/bytes/500?seed=5", b"Connection: close")),
    one("headers-request-spacing", get(b"/headers", b"X-Empty:", b"X-Pad:  v ", b"x-LOW: a"), 1),
    one("headers-response-empty-and-padded", get(b"/response-headers?X-Empty=&X-Sp=%20a%20")),
    one("headers-response-large", get(b"/response-headers?X-Big=" + b"x" * 3000)),
    one("headers-response-status-599", get(b"/status/599")),
]

TARGETS = [
    one("target-absolute-form", request(b"GET http://httpbin.test/get?a=1 HTTP/1.1", H), 1),
    one("target-encoded", get(b"//anything/%7E%2f;p?q=a%20b&r=%2B&&s"), 1),
    one("target-get-with-body", sized(b"GET", b"/anything", b"body on a GET"), 1),
    one("target-fragment", get(b"/anything#fragment"), 1),
    one("target-unsafe-query", get(b"/anything?q=a|b{c}^`"), 1),
    one("headers-request-obs-text", get(b"/headers", b"X-Name: caf\xc3\xa9"), 1),
]

KEEP_ALIVE_11 = [
    Case(
        "keep-alive-mixed",
        (
            Step(get(b"/get"), 1),
            Step(sized(b"POST", b"/post", FORM, FORM_TYPE), 1),
            Step(head(b"/html")),
            Step(get(b"/status/204")),
            Step(chunks(b"PUT", b"/put", BINARY, OCTETS), 1),
            Step(get(b"/stream/2"), 2),
            Step(get(b"/bytes/10?seed=1", b"Connection: close")),
        ),
    ),
    Case(
        "keep-alive-pipelined",
        (
            Step(get(b"/bytes/3?seed=1")),
            Step(get(b"/status/204")),
            Step(head(b"/stream/2")),
            Step(sized(b"POST", b"/anything", b"abc"), 1),
            Step(get(b"/stream/2"), 2),
            Step(get(b"/html", b"Connection: close")),
        ),
        pipelined=True,
    ),
]

# Clients that shut their sending side once the request is out (`nc -N`, some scripts).
HALF_CLOSED = [
    Case("half-close-http10", (Step(http10(b"/bytes/4?seed=1", H)),), half_close=True),
    Case(
        "half-close-streaming",
        (Step(get(b"/drip?duration=0.1&numbytes=3&delay=0")),),
        half_close=True,
    ),
    Case(
        "half-close-upload", (Step(chunks(b"POST", b"/post", FORM, FORM_TYPE), 1),), half_close=True
    ),
]

# What `curl --http2` sends to an http:// URL. A server without h2c ignores the Upgrade and goes
# on with HTTP/1.1 (RFC 9110 section 7.8); the proxy drops Upgrade and the fields Connection
# names (hop-by-hop), so the backend ignores it too and the connection must go on the same way.
H2C = (b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAAQ")
H2C_THEN_GET = (Step(get(b"/bytes/4?seed=1", *H2C)), Step(get(b"/bytes/5?seed=1")))
UPGRADES = [
    Case("upgrade-h2c-ignored", H2C_THEN_GET),
    Case("upgrade-h2c-ignored-pipelined", H2C_THEN_GET, pipelined=True),
]

CASES = (
    METHODS + STATUS + REDIRECTS + COOKIES + COMPRESSION + RANGES + STREAMING + UPLOADS + HTTP10
    + BODIES + HEADERS + TARGETS + KEEP_ALIVE_11 + HALF_CLOSED + UPGRADES
)  # fmt: skip


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with serve_httpbin(tmp_path_factory.mktemp("differential")) as running:
        yield running


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_same_answer_directly_and_through_the_proxy(servers: Servers, case: Case) -> None:
    direct = converse(servers.direct, case)
    proxied = converse(servers.proxied, case)
    assert len(direct) == len(case.steps)
    assert len(proxied) == len(direct)
    for step, answer, through in zip(case.steps, direct, proxied, strict=True):
        assert proxied_view(step, through) == expected_view(step, answer)


def test_case_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)
