"""TLS to https backends: verification, SNI, client certificates, pooling, error kinds.

The backends are real TLS servers on loopback with certificates from a CA made in the test
(trustme); nothing in the system CA store trusts it.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from proxy.http.pool import Upstreams
from proxy.http.tls import TlsContexts
from proxy.routing.model import Backend, TlsOptions
from proxy.routing.parser import parse_table
from tests.proxy.http.test_connection import assert_envelope, errors
from tests.support.raw_http import (
    Upstream,
    canned,
    exchange,
    read_response,
    respond,
    table_text,
)

REQUEST = b"GET /bookings/1?q=%20 HTTP/1.1\r\nHost: api.example\r\nX-Request-ID: tls-1\r\n\r\n"
FORWARDED = (
    b"GET /bookings/1?q=%20 HTTP/1.1\r\nHost: api.example\r\nX-Request-ID: tls-1\r\n"
    b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: api.example"
)
BODY = bytes(range(256)) * 300  # binary, and larger than one TLS record


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(
    cert: trustme.LeafCert, client_ca: trustme.CA | None, sni: list[str | None]
) -> ssl.SSLContext:
    """A TLS server context serving `cert`; it appends each SNI name it receives to `sni`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.sni_callback = lambda _socket, name, _context: sni.append(name)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    return context


def tls_options(**options: object) -> str:
    """The `tls:` value of a backend, as YAML flow text."""
    return "{" + ", ".join(f"{key}: {value!r}" for key, value in options.items()) + "}"


@pytest.fixture
def tls_upstream(upstream_factory) -> Callable[..., Awaitable[Upstream]]:
    """A keep-alive https upstream answering 200 with BODY."""

    async def start(
        cert: trustme.LeafCert,
        client_ca: trustme.CA | None = None,
        sni: list[str | None] | None = None,
    ) -> Upstream:
        context = server_context(cert, client_ca, [] if sni is None else sni)
        return await upstream_factory(canned(respond(body=BODY)), tls=context)

    return start


async def test_verified_backend_gets_the_request_over_tls(tls_upstream, proxy_factory, ca, ca_file):
    sni: list[str | None] = []
    upstream = await tls_upstream(ca.issue_cert("127.0.0.1"), sni=sni)
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    response = await exchange(proxy.port, REQUEST)
    assert response.status == 200
    assert response.body == BODY
    assert [request.head for request in upstream.requests] == [FORWARDED]
    assert sni == [None]  # an IP address is never sent as SNI
    assert errors(proxy, "tls") == 0


async def test_wrong_name_is_502_tls(tls_upstream, proxy_factory, ca, ca_file):
    upstream = await tls_upstream(ca.issue_cert("other.example"))
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    assert_envelope(await exchange(proxy.port, REQUEST), 502, upstream.port)
    assert errors(proxy, "tls") == 1
    assert errors(proxy, "connect") == errors(proxy, "reset") == 0
    assert upstream.requests == []


async def test_untrusted_ca_is_502_tls(tls_upstream, proxy_factory, ca_file):
    upstream = await tls_upstream(trustme.CA().issue_cert("127.0.0.1"))
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    assert_envelope(await exchange(proxy.port, REQUEST), 502, upstream.port)
    assert errors(proxy, "tls") == 1
    assert upstream.requests == []


async def test_verified_by_default_against_the_system_store(tls_upstream, proxy_factory, ca):
    upstream = await tls_upstream(ca.issue_cert("127.0.0.1"))
    proxy = await proxy_factory(upstream.url)  # no tls: block; the test CA is in no system store
    assert_envelope(await exchange(proxy.port, REQUEST), 502, upstream.port)
    assert errors(proxy, "tls") == 1
    assert upstream.requests == []


async def test_expired_certificate_is_502_tls(tls_upstream, proxy_factory, ca, ca_file):
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert(
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    upstream = await tls_upstream(expired)
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    assert_envelope(await exchange(proxy.port, REQUEST), 502, upstream.port)
    assert errors(proxy, "tls") == 1
    assert upstream.requests == []


async def test_verify_false_accepts_an_untrusted_certificate(tls_upstream, proxy_factory):
    upstream = await tls_upstream(trustme.CA().issue_cert("other.example"))
    proxy = await proxy_factory(upstream.url, tls=tls_options(verify=False))
    response = await exchange(proxy.port, REQUEST)
    assert (response.status, response.body) == (200, BODY)
    assert [request.head for request in upstream.requests] == [FORWARDED]


async def test_server_name_is_sent_as_sni_and_verified(tls_upstream, proxy_factory, ca, ca_file):
    sni: list[str | None] = []
    upstream = await tls_upstream(ca.issue_cert("api.internal"), sni=sni)
    options = tls_options(ca_file=ca_file, server_name="api.internal")
    proxy = await proxy_factory(upstream.url, tls=options)
    response = await exchange(proxy.port, REQUEST)
    assert (response.status, response.body) == (200, BODY)
    assert sni == ["api.internal"]
    assert errors(proxy, "tls") == 0


@pytest.fixture
def client_files(tmp_path: Path) -> tuple[trustme.CA, str, str]:
    """A client CA, and a certificate it issued with its key, as files."""
    client_ca = trustme.CA()
    client = client_ca.issue_cert("proxy.client")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return client_ca, str(cert), str(key)


async def test_client_certificate_is_presented(
    tls_upstream, proxy_factory, ca, ca_file, client_files
):
    client_ca, cert, key = client_files
    upstream = await tls_upstream(ca.issue_cert("127.0.0.1"), client_ca=client_ca)
    options = tls_options(ca_file=ca_file, client_cert=cert, client_key=key)
    proxy = await proxy_factory(upstream.url, tls=options)
    response = await exchange(proxy.port, REQUEST)
    assert (response.status, response.body) == (200, BODY)
    assert [request.head for request in upstream.requests] == [FORWARDED]


def refuse_handshake(listener: socket.socket, context: ssl.SSLContext) -> bytes:
    """Accept one connection and fail its handshake as OpenSSL does, sending the alert and
    closing gracefully (a server closing with unread bytes resets the connection, and the reset
    can overtake the alert). Returns the first bytes received."""
    conn, _ = listener.accept()
    conn.settimeout(5)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    with conn:
        first = conn.recv(65536)
        incoming.write(first)
        while True:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                conn.sendall(outgoing.read())
                incoming.write(conn.recv(65536))
                continue
            except ssl.SSLError:
                conn.sendall(outgoing.read())  # the alert
            break
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    return first


async def test_missing_client_certificate_is_502_tls(proxy_factory, ca, ca_file, client_files):
    client_ca, _, _ = client_files
    context = server_context(ca.issue_cert("127.0.0.1"), client_ca, [])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        server = asyncio.create_task(asyncio.to_thread(refuse_handshake, listener, context))
        port = listener.getsockname()[1]
        proxy = await proxy_factory(f"https://127.0.0.1:{port}", tls=tls_options(ca_file=ca_file))
        assert_envelope(await exchange(proxy.port, REQUEST), 502, port)
        assert (await asyncio.wait_for(server, 5))[:1] == b"\x16"  # a ClientHello
    assert errors(proxy, "tls") == 1
    assert errors(proxy, "reset") == 0


async def test_sequential_requests_share_one_tls_connection(
    tls_upstream, proxy_factory, ca, ca_file
):
    upstream = await tls_upstream(ca.issue_cert("127.0.0.1"))
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for _ in range(2):
            writer.write(REQUEST)
            response = await asyncio.wait_for(read_response(reader), 5)
            assert (response.status, response.body) == (200, BODY)
    finally:
        writer.close()
    assert [request.head for request in upstream.requests] == [FORWARDED, FORWARDED]
    assert upstream.connections == 1
    assert proxy.pool_size() == 1


async def test_large_bodies_stream_both_ways_over_tls(upstream_factory, proxy_factory, ca, ca_file):
    upload, download = b"u" * (3 * 1024 * 1024), bytes(range(251)) * 12_000  # ~3 MiB each
    context = server_context(ca.issue_cert("127.0.0.1"), None, [])
    upstream = await upstream_factory(canned(respond(body=download)), tls=context)
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    head = b"POST /bookings HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n" % len(upload)
    response = await exchange(proxy.port, head + upload, timeout=20)
    assert (response.status, len(response.body)) == (200, len(download))
    assert response.body == download
    assert [len(request.body) for request in upstream.requests] == [len(upload)]
    assert upstream.requests[0].body == upload


async def test_http_and_https_backends_side_by_side(
    upstream_factory, tls_upstream, proxy_factory, ca, ca_file
):
    plain = await upstream_factory(canned(respond(body=b"plain")))
    secure = await tls_upstream(ca.issue_cert("127.0.0.1"))
    text = (
        table_text({"plain": plain.url}, "plain").replace("default: plain\n", "")
        + f"  secure:\n    url: {secure.url}\n    tls: {tls_options(ca_file=ca_file)}\n"
        + "default: plain\nresources:\n  bookings: secure\n"
    )
    proxy = await proxy_factory(text=text)
    response = await exchange(proxy.port, REQUEST)
    assert (response.status, response.body) == (200, BODY)
    response = await exchange(proxy.port, REQUEST.replace(b"/bookings/1", b"/tours/1"))
    assert (response.status, response.body) == (200, b"plain")
    assert [request.request_line for request in plain.requests] == [b"GET /tours/1?q=%20 HTTP/1.1"]
    assert [request.head for request in secure.requests] == [FORWARDED]


async def test_handshake_timeout_is_504_connect_timeout(upstream_factory, proxy_factory):
    received: list[bytes] = []

    def silent(upstream: Upstream):
        async def handle(reader, writer):
            received.append(await reader.read(5))
            await reader.read()  # the ClientHello stays unanswered

        return handle

    upstream = await upstream_factory(silent)
    proxy = await proxy_factory(
        upstream.url.replace("http:", "https:"), connect_timeout=0.3, read_timeout=30
    )
    response = await exchange(proxy.port, REQUEST)
    assert_envelope(response, 504, upstream.port)
    assert b"did not accept the connection in time" in response.body
    assert errors(proxy, "timeout") == 1
    assert received[0][:1] == b"\x16"  # a TLS handshake record, not a plaintext request


async def test_plaintext_server_behind_an_https_url_is_502_tls(upstream_factory, proxy_factory):
    def plaintext(upstream: Upstream):
        async def handle(reader, writer):
            await reader.read(5)
            writer.write(respond(b"400 Bad Request", b"not TLS"))  # what a plain server says
            await writer.drain()

        return handle

    upstream = await upstream_factory(plaintext)
    proxy = await proxy_factory(upstream.url.replace("http:", "https:"))
    assert_envelope(await exchange(proxy.port, REQUEST), 502, upstream.port)
    assert errors(proxy, "tls") == 1
    assert upstream.requests == []


async def test_a_renewed_ca_file_is_used_without_a_restart(
    tls_upstream, proxy_factory, ca, ca_file
):
    renewed = trustme.CA()
    upstream = await tls_upstream(renewed.issue_cert("127.0.0.1"))
    proxy = await proxy_factory(upstream.url, tls=tls_options(ca_file=ca_file))
    assert (await exchange(proxy.port, REQUEST)).status == 502
    replacement = Path(ca_file).with_suffix(".new")
    renewed.cert_pem.write_to_path(str(replacement))
    os.replace(replacement, ca_file)  # as a Kubernetes secret update or certbot would
    response = await exchange(proxy.port, REQUEST)
    assert (response.status, response.body) == (200, BODY)
    assert errors(proxy, "tls") == 1


# -- pools and contexts, without sockets ---------------------------------------------------------


def backend(url: str, tls: str | None = None, source: str = "routes.yaml") -> Backend:
    options = {} if tls is None else {"tls": tls}
    table = parse_table(table_text({"app": url}, "app", **options), source, environ={})
    return table.backends["app"]


async def test_pools_are_keyed_by_scheme_and_tls_options(ca_file):
    upstreams = Upstreams()
    http = upstreams.pool(backend("http://127.0.0.1:8443"))
    https = upstreams.pool(backend("https://127.0.0.1:8443"))
    pinned = upstreams.pool(backend("https://127.0.0.1:8443", tls_options(ca_file=ca_file)))
    assert len({id(http), id(https), id(pinned)}) == 3
    assert (http.tls, http.server_name) == (None, None)
    assert (https.tls, https.server_name) == (TlsOptions(), "127.0.0.1")  # SNI: the URL's host
    # the same options in a table parsed anew (a reload) keep the pool and its connections
    again = backend("https://127.0.0.1:8443", tls_options(ca_file=ca_file))
    assert upstreams.pool(again) is pinned
    upstreams.close()


def test_one_context_per_distinct_tls_options(ca_file):
    contexts = TlsContexts()
    pinned = TlsOptions(ca_file=ca_file)
    context = contexts.get(pinned)
    assert context is not None and contexts.get(TlsOptions(ca_file=ca_file)) is context
    assert contexts.get(TlsOptions(ca_file=ca_file, verify=False)) is not context
    assert contexts.get(None) is None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    relaxed = contexts.get(TlsOptions(verify=False))
    assert relaxed is not None and relaxed.verify_mode == ssl.CERT_NONE
    assert contexts.get(TlsOptions(verify=False)) is relaxed


def test_https_without_a_port_is_443_with_default_options() -> None:
    secure = backend("https://h")
    assert (secure.port, secure.tls) == (443, TlsOptions())
    assert secure.pool_key == f"https://h:443 {TlsOptions()!r}"
    assert (backend("http://h").tls, backend("http://h").pool_key) == (None, "http://h:80")
