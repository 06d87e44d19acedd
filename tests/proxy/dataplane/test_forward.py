"""proxy.dataplane.forward and heads, byte for byte: targets, headers, bodies, framing, status
codes."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import socket

import pytest

from proxy.settings import Settings
from tests.support.raw_http import (
    RawRequest,
    canned,
    exchange,
    read_body,
    read_head,
    read_response,
    respond,
)


@pytest.mark.parametrize(
    "target",
    [
        b"/bookings/%7e?q=a%20b&q=%2F",
        b"//double//slashes/",
        b"/bookings;params=1/x;y?z",
        b"/bookings/%2F%2f/..%2F?a=%zz&&=&b=",
        b"/bookings?%E2%82%AC=%e2%82%ac+plus",
        b"/",
    ],
)
async def test_target_goes_upstream_byte_for_byte(upstream_factory, proxy_factory, target):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    response = await exchange(proxy.port, b"GET %b HTTP/1.1\r\nHost: api\r\n\r\n" % target)
    assert response.status == 200
    assert upstream.requests[0].request_line == b"GET %b HTTP/1.1" % target


async def test_headers_upstream_exact_list(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    request = (
        b"GET /bookings HTTP/1.1\r\n"
        b"Host: api.example\r\n"
        b"Connection: keep-alive, X-Hop\r\n"
        b"X-Hop: secret\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"TE: trailers\r\n"
        b"Upgrade: websocket\r\n"
        b"Trailer: X-Sum\r\n"
        b"Proxy-Authorization: Basic eA==\r\n"
        b"Cache-Control: no-cache\r\n"
        b"X-Application-Key: demo\r\n"
        b"X-Request-ID: client-chosen-1\r\n"
        b"X-Strangler-Force: app; token=none-configured\r\n"
        b"X-Strangler-Shadow: dry-run\r\n"
        b"x-strangler-signature: t=1,v1=forged\r\n"
        b"Cache-Control: max-age=0\r\n"
        b"x-lower-case: Value  With  Spaces\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\n"
        b"X-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: evil\r\n"
        b"\r\n"
    )
    await exchange(proxy.port, request)
    assert upstream.requests[0].headers == [
        (b"Host", b"api.example"),
        (b"Cache-Control", b"no-cache"),
        (b"X-Application-Key", b"demo"),
        (b"X-Request-ID", b"client-chosen-1"),
        (b"Cache-Control", b"max-age=0"),
        (b"x-lower-case", b"Value  With  Spaces"),
        (b"X-Forwarded-For", b"127.0.0.1"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"api.example"),
    ]


async def test_forwarded_headers_trusted_proxy_appends(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    settings = Settings(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    proxy = await proxy_factory(upstream.url, settings)
    response = await exchange(
        proxy.port,
        b"GET / HTTP/1.1\r\nHost: inner\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: api.example\r\n\r\n",
    )
    request_id = response.header(b"X-Request-ID")
    assert request_id is not None and len(request_id) == 32
    assert upstream.requests[0].headers == [
        (b"Host", b"inner"),
        (b"X-Request-ID", request_id),
        (b"X-Forwarded-For", b"1.2.3.4, 10.0.0.1, 127.0.0.1"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"api.example"),
    ]


FORWARDED_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: inner\r\nForwarded: for=6.6.6.6;proto=https;host=evil\r\n"
    b"forwarded: for=7.7.7.7\r\n\r\n"
)


async def test_forwarded_from_an_untrusted_client_is_dropped(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    await exchange(proxy.port, FORWARDED_REQUEST)
    names = [name.lower() for name, _ in upstream.requests[0].headers]
    assert b"forwarded" not in names
    assert upstream.requests[0].headers[-3:] == [
        (b"X-Forwarded-For", b"127.0.0.1"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"inner"),
    ]


async def test_forwarded_from_a_trusted_proxy_is_kept(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    settings = Settings(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    proxy = await proxy_factory(upstream.url, settings)
    await exchange(proxy.port, FORWARDED_REQUEST)
    assert [header for header in upstream.requests[0].headers if header[0] != b"X-Request-ID"] == [
        (b"Host", b"inner"),
        (b"Forwarded", b"for=6.6.6.6;proto=https;host=evil"),
        (b"forwarded", b"for=7.7.7.7"),
        (b"X-Forwarded-For", b"127.0.0.1"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"inner"),
    ]


async def test_only_the_request_id_and_forwarding_added_to_a_bare_request(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    await exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    names = [name.lower() for name, _ in upstream.requests[0].headers]
    assert names == [
        b"host",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    ]


async def test_response_headers_repeated_and_hop_by_hop_removed(upstream_factory, proxy_factory):
    response = respond(
        b"200 OK",
        b"{}",
        (
            b"Set-Cookie: a=1; Path=/",
            b"Connection: X-Internal",
            b"X-Internal: leak",
            b"Keep-Alive: timeout=5",
            b"Set-Cookie: b=2",
            b"Proxy-Authenticate: Basic",
            b"Upgrade: h2c",
            b"Cache-Control: private",
            b"Cache-Control: no-store",
            b"Server: upstream/1.0",
        ),
    )
    upstream = await upstream_factory(canned(response))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: r1\r\n\r\n")
    assert result.status_line == b"HTTP/1.1 200 OK"
    assert result.headers == [
        (b"Set-Cookie", b"a=1; Path=/"),
        (b"Set-Cookie", b"b=2"),
        (b"Cache-Control", b"private"),
        (b"Cache-Control", b"no-store"),
        (b"Server", b"upstream/1.0"),
        (b"Content-Length", b"2"),
        (b"X-Request-ID", b"r1"),
    ]
    assert result.body == b"{}"


@pytest.mark.parametrize(
    "status",
    [b"200 OK", b"201 Created", b"299 Custom Thing", b"418 I'm a teapot", b"599 Weird", b"404 "],
)
async def test_status_line_passes_unchanged(upstream_factory, proxy_factory, status):
    upstream = await upstream_factory(canned(respond(status, b"x")))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert result.status_line == b"HTTP/1.1 " + status


async def test_gzip_body_not_decoded(upstream_factory, proxy_factory):
    payload = gzip.compress(b'{"id": 1}' * 100)
    upstream = await upstream_factory(
        canned(respond(b"200 OK", payload, (b"Content-Encoding: gzip",)))
    )
    proxy = await proxy_factory(upstream.url)
    result = await exchange(
        proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    assert result.header(b"Content-Encoding") == b"gzip"
    assert result.body == payload
    assert (b"Accept-Encoding", b"gzip") in upstream.requests[0].headers


async def test_gzip_request_body_not_decoded(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    body = gzip.compress(b"x" * 1000)
    await exchange(
        proxy.port,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%b"
        % (len(body), body),
    )
    assert upstream.requests[0].body == body


async def test_chunked_request_is_rechunked(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(
        proxy.port,
        b"POST /bookings HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    )
    assert result.status == 200
    request = upstream.requests[0]
    assert request.body == b"hello world"
    assert (b"Transfer-Encoding", b"chunked") in request.headers


async def test_content_length_request_body(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    await exchange(proxy.port, b'PUT /b/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n{"a":1}')
    assert upstream.requests[0].body == b'{"a":1}'
    assert (b"Content-Length", b"7") in upstream.requests[0].headers


def chunked_upstream(pieces: list[bytes]):
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)


async def test_chunked_response_to_http11_client(upstream_factory, proxy_factory):
    upstream = await upstream_factory(chunked_upstream([b"abc", b"defg"]))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert result.header(b"Transfer-Encoding") == b"chunked"
    assert result.body == b"abcdefg"


async def test_chunked_response_to_http10_client_is_close_delimited(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(chunked_upstream([b"abc", b"defg"]))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
    assert result.header(b"Transfer-Encoding") is None
    assert result.body == b"abcdefg"


async def test_response_until_close_is_chunked_for_http11(upstream_factory, proxy_factory):
    upstream = await upstream_factory(
        canned(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed-till-eof", close=True)
    )
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert result.header(b"Transfer-Encoding") == b"chunked"
    assert result.body == b"streamed-till-eof"


async def test_head_keeps_content_length_and_sends_no_body(upstream_factory, proxy_factory):
    upstream = await upstream_factory(
        canned(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n")
    )
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for _ in range(2):
        writer.write(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
        result = await asyncio.wait_for(read_response(reader, head_request=True), 5)
        assert result.header(b"Content-Length") == b"1234"
    writer.write(b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    await read_response(reader, head_request=True)
    assert await reader.read() == b""
    writer.close()
    assert upstream.connections == 1


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
async def test_no_body_statuses_keep_the_connection(upstream_factory, proxy_factory, status):
    extra = (b'ETag: "v1"',) if status.startswith(b"304") else ()
    response = b"\r\n".join([b"HTTP/1.1 " + status, *extra]) + b"\r\n\r\n"
    upstream = await upstream_factory(canned(response))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for _ in range(3):
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        result = await asyncio.wait_for(read_response(reader), 5)
        assert result.status_line == b"HTTP/1.1 " + status
        assert result.header(b"Transfer-Encoding") is None
        assert result.header(b"Content-Length") is None
    writer.close()
    assert upstream.connections == 1


async def test_keep_alive_both_sides(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(lambda r: respond(body=r.request_line)))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for n in range(20):
        writer.write(b"GET /n/%d HTTP/1.1\r\nHost: h\r\n\r\n" % n)
        result = await asyncio.wait_for(read_response(reader), 5)
        assert result.body == b"GET /n/%d HTTP/1.1" % n
    writer.close()
    assert upstream.connections == 1
    assert proxy.pool_size() == 1


async def test_pipelined_requests_answered_in_order(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(lambda r: respond(body=r.request_line)))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"".join(b"GET /p/%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(5)))
    bodies = [(await asyncio.wait_for(read_response(reader), 5)).body for _ in range(5)]
    writer.close()
    assert bodies == [b"GET /p/%d HTTP/1.1" % n for n in range(5)]


async def test_http10_client_without_host(upstream_factory, proxy_factory):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url)
    result = await exchange(proxy.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert result.status == 200
    request: RawRequest = upstream.requests[0]
    assert request.request_line == b"GET /old HTTP/1.1"
    assert request.headers[0] == (b"Host", b"127.0.0.1:%d" % upstream.port)


async def test_access_log_switch(upstream_factory, proxy_factory, capsys):
    upstream = await upstream_factory(canned(respond(b"201 Created")))
    quiet = await proxy_factory(upstream.url, Settings(access_log=False))
    loud = await proxy_factory(upstream.url, Settings(access_log=True))
    post = b"POST /bookings HTTP/1.1\r\nHost: h\r\nX-Request-ID: r-7\r\nContent-Length: 2\r\n\r\nhi"
    await exchange(quiet.port, post)
    quiet.listener.forwarder.access_log.flush()
    assert capsys.readouterr().out == ""
    await exchange(loud.port, post)
    loud.listener.forwarder.access_log.flush()
    line = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in line.items() if k not in ("time", "duration_ms")} == {
        "request_id": "r-7",
        "method": "POST",
        "path": "/bookings",
        "resource": "other",
        "backend": "app",
        "status": 201,
        "bytes_in": 2,
        "bytes_out": 2,
        "canary": False,
        "forced": False,
        "fallback": False,
        "shadow": False,
        "client": False,
    }


async def test_expect_continue_and_interim_responses(upstream_factory, proxy_factory):
    def make(upstream):
        async def handle(reader, writer):
            head = await read_head(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            upstream.requests.append(RawRequest(head, await read_body(reader, head)))
            writer.write(b"HTTP/1.1 102 Processing\r\nX-Interim: 1\r\n\r\n")
            writer.write(respond(b"201 Created", b"made"))
            await writer.drain()
            await reader.read()

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /b HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    assert await asyncio.wait_for(read_head(reader), 5) == b"HTTP/1.1 100 Continue"
    writer.write(b"data")
    # the backend's own 100 is dropped, its 102 relayed as it came (more: test_interim.py)
    interim = await asyncio.wait_for(read_head(reader), 5)
    assert interim == b"HTTP/1.1 102 Processing\r\nX-Interim: 1"
    result = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert result.status_line == b"HTTP/1.1 201 Created"
    assert result.header(b"X-Interim") is None
    assert result.body == b"made"
    assert upstream.requests[0].body == b"data"


async def test_idle_client_connection_closed_after_keepalive_timeout(
    upstream_factory, proxy_factory
):
    upstream = await upstream_factory(canned(respond()))
    proxy = await proxy_factory(upstream.url, Settings(keepalive_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await asyncio.wait_for(read_response(reader), 5)).status == 200
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.2 < loop.time() - started < 1.5
    writer.close()
    assert not proxy.listener.connections


async def test_a_client_that_pipelines_and_never_reads_is_not_served_ahead(
    upstream_factory, proxy_factory
):
    """Backpressure on pipelining: the proxy forwards the next request only when the client
    reads what came before, so such a client cannot make it hold thousands of answers."""
    body = b"x" * 16 * 1024
    upstream = await upstream_factory(canned(respond(body=body)))
    proxy = await proxy_factory(upstream.url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", proxy.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    total = 3000
    writer.write(b"".join(b"GET /p/%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(total)))
    await writer.drain()
    await asyncio.sleep(1.5)  # not reading
    forwarded = len(upstream.requests)
    assert forwarded < total // 5, forwarded  # what the socket buffers hold, then it waits
    for _ in range(total):  # reading now: every answer comes, in order
        result = await asyncio.wait_for(read_response(reader), 5)
        assert (result.status, len(result.body)) == (200, len(body))
    writer.close()
    assert [r.request_line for r in upstream.requests] == [
        b"GET /p/%d HTTP/1.1" % n for n in range(total)
    ]


async def test_a_large_upload_then_pipelined_requests(upstream_factory, proxy_factory):
    """The upload's own backpressure (pause above 256 KiB) and the pipelining hold share the
    client's transport: neither may leave it paused for good."""
    upstream = await upstream_factory(canned(lambda r: respond(body=b"%d" % len(r.body))))
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    upload = b"u" * (1024 * 1024)
    writer.write(
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%b" % (len(upload), upload)
        + b"GET /after/1 HTTP/1.1\r\nHost: h\r\n\r\n"
        + b"POST /small HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"3\r\nabc\r\n0\r\n\r\n"
        + b"GET /after/2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    bodies = [(await asyncio.wait_for(read_response(reader), 5)).body for _ in range(4)]
    writer.close()
    assert bodies == [b"1048576", b"0", b"3", b"0"]
    assert [r.request_line for r in upstream.requests] == [
        b"POST /up HTTP/1.1", b"GET /after/1 HTTP/1.1", b"POST /small HTTP/1.1",
        b"GET /after/2 HTTP/1.1",
    ]  # fmt: skip


async def test_an_upload_queued_behind_a_slow_answer(upstream_factory, proxy_factory):
    """The upload's head arrives while the request before it is answered: reading is held,
    then resumed when its turn comes, and the whole body reaches the backend."""

    def make(upstream):
        async def handle(reader, writer):
            while head := await read_head(reader):
                request = RawRequest(head, await read_body(reader, head))
                upstream.requests.append(request)
                if request.request_line.startswith(b"GET /slow"):
                    await asyncio.sleep(0.3)
                writer.write(respond(body=b"%d" % len(request.body)))
                await writer.drain()

        return handle

    upstream = await upstream_factory(make)
    proxy = await proxy_factory(upstream.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    upload = b"v" * (2 * 1024 * 1024)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
    writer.write(b"PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(upload))
    writer.write(upload)
    bodies = [(await asyncio.wait_for(read_response(reader), 5)).body for _ in range(2)]
    writer.close()
    assert bodies == [b"0", b"%d" % len(upload)]
