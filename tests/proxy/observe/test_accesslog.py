"""proxy.observe.accesslog: the line, batching, and lines really reaching a real process's
stdout."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.observe.accesslog import BATCH_BYTES, AccessLog, client, digest, without_userinfo
from stack.ports import wait_port
from tests.support import ROOT, free_port
from tests.support.raw_http import canned, exchange, respond, write_routes
from tests.support.routed import routed_proxy, routes_yaml


class Writes(io.StringIO):
    """A stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_line_keys_values_and_escaping() -> None:
    stream = Writes()
    log = AccessLog(stream)
    log.request(
        request_id='id"\\\n',
        method="GET",
        path='/bookings/"x"\u00e9\t',
        resource="bookings",
        backend="drf",
        status=404,
        seconds=0.0012344,
        bytes_in=3,
        bytes_out=45,
        canary=True,
        fallback="legacy",
        shadow=True,
        client="sha256:2a97516c",
    )
    text = stream.getvalue()
    assert text.endswith("}\n") and text.count("\n") == 1 and text.isascii()
    line = json.loads(text)
    assert list(line) == [
        "time", "request_id", "method", "path", "resource", "backend", "status", "duration_ms",
        "bytes_in", "bytes_out", "canary", "forced", "fallback", "shadow", "client",
    ]  # fmt: skip
    assert line["request_id"] == 'id"\\\n'
    assert line["path"] == '/bookings/"x"\u00e9\t'
    assert (line["status"], line["duration_ms"], line["bytes_in"], line["bytes_out"]) == (
        404,
        1.234,
        3,
        45,
    )
    assert (line["canary"], line["forced"], line["fallback"], line["shadow"]) == (
        True,
        False,
        "legacy",
        True,
    )
    assert line["client"] == "sha256:2a97516c"
    assert time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S")
    assert line["time"][19] == "." and line["time"].endswith("Z") and len(line["time"]) == 24


@pytest.mark.parametrize(
    "seconds",
    [0.0, 1e-7, 0.0004996, 0.0009996, 0.001, 0.0123456, 0.2509, 0.9999999, 1.0, 12.3456789, 3600.5],
)
def test_duration_is_written_in_milliseconds_with_three_decimals(seconds: float) -> None:
    """The same digits as `f"{seconds * 1000:.3f}"` (the line is built without format specs)."""
    stream = io.StringIO()
    log = AccessLog(stream)
    log.request("r", "GET", "/a", "other", "app", 200, seconds, 0, 0)
    log.flush()
    assert f'"duration_ms": {seconds * 1000:.3f}, ' in stream.getvalue()


def test_the_time_has_milliseconds_of_three_digits() -> None:
    stream = io.StringIO()
    log = AccessLog(stream)
    before = time.time()
    log.request("r", "GET", "/a", "other", "app", 200, 0.0, 0, 0)
    log.flush()
    stamp = json.loads(stream.getvalue())["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    written = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(written + int(stamp[20:23]) / 1000 - before) < 1.0


def test_a_credential_is_hashed_once_then_remembered() -> None:
    secret = b"Bearer remembered-%d" % time.monotonic_ns()
    first = digest(secret)
    assert digest(secret) is first  # the same string: no second SHA-256
    assert first == "sha256:" + hashlib.sha256(secret).hexdigest()[:8]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"Authorization", b"Bearer abc"), (b"X-Application-Key", b"demo")], "sha256:c355dce9"),
        ([(b"x-application-key", b"demo"), (b"AUTHORIZATION", b"Bearer abc")], "sha256:c355dce9"),
        ([(b"Accept", b"*/*"), (b"X-Application-Key", b"demo")], "sha256:2a97516c"),
        ([(b"Authorization", b""), (b"X-Application-Key", b"demo")], "sha256:2a97516c"),
        ([(b"Cookie", b"session=s3cret"), (b"X-Application-Kez", b"demo")], None),
        ([], None),
    ],
)
def test_client_is_the_digest_of_authorization_else_the_application_key(
    headers: list[tuple[bytes, bytes]], expected: str | None
) -> None:
    assert client(headers) == expected


def test_digest_and_user_information() -> None:
    assert digest(b"Bearer abc") == "sha256:c355dce9"
    assert without_userinfo("http://u:pw@h:80/b/7") == "http://sha256:aa12c3c4@h:80/b/7"
    assert without_userinfo("http://h/a@b") == "http://h/a@b"  # an @ in the path is no userinfo
    assert without_userinfo("/a@b") == "/a@b"


def normalised(text: str) -> str:
    """A line with its time and duration (which vary) replaced by T and 0."""
    text = re.sub(r'"time": "[^"]+"', '"time": "T"', text)
    return re.sub(r'"duration_ms": [0-9.]+', '"duration_ms": 0', text)


async def test_secrets_are_written_only_as_digest_prefixes(upstream_factory) -> None:
    upstream = await upstream_factory(canned(respond(b"200 OK", b"hello")))
    log = io.StringIO()
    async with routed_proxy(routes_yaml({"app": upstream.url}, "app"), log=log) as proxy:
        secrets = b"Authorization: Bearer abc\r\nX-Application-Key: demo\r\nCookie: s=s3cret\r\n"
        for target, headers in [
            (b"/bookings/7?access_token=xyz&page=2", secrets),
            (b"/bookings/7?key=xyz&api_key=xyz", b"X-Application-Key: demo\r\n"),
            (b"http://u:xyz@h/bookings/7?password=xyz", b""),
        ]:
            request = b"GET %b HTTP/1.1\r\nHost: h\r\nX-Request-ID: r-1\r\n%b\r\n" % (
                target,
                headers,
            )
            assert (await exchange(proxy.port, request)).status == 200
        proxy.listener.forwarder.access_log.flush()
    text = log.getvalue()
    assert all(secret not in text for secret in ("abc", "demo", "xyz", "s3cret"))
    common = (
        '"request_id": "r-1", "method": "GET", "path": "{}", "resource": "other", '
        '"backend": "app", "status": 200, "duration_ms": 0, "bytes_in": 0, "bytes_out": 5, '
        '"canary": false, "forced": false, "fallback": false, "shadow": false, "client": {}}}'
    )
    assert normalised(text).splitlines() == [
        '{"time": "T", ' + common.format("/bookings/7", '"sha256:c355dce9"'),
        '{"time": "T", ' + common.format("/bookings/7", '"sha256:2a97516c"'),
        '{"time": "T", ' + common.format("http://sha256:b463bcec@h/bookings/7", "false"),
    ]
    # the backend still gets every credential as the client sent it
    assert b"Authorization: Bearer abc" in upstream.requests[0].head
    assert upstream.requests[0].request_line == b"GET /bookings/7?access_token=xyz&page=2 HTTP/1.1"


async def test_lines_are_batched_in_whole_lines_of_at_most_pipe_buf() -> None:
    stream = Writes()
    log = AccessLog(stream)
    lines = [f'{{"n": {n}, "pad": "{"x" * (n % 300)}"}}\n' for n in range(200)]
    for line in lines:
        log.write(line)
    assert stream.writes  # a full batch goes out at once
    await asyncio.sleep(0.15)  # the rest within FLUSH_SECONDS
    assert "".join(stream.writes) == "".join(lines)
    assert all(len(w) <= BATCH_BYTES and w.endswith("\n") for w in stream.writes)
    assert len(stream.writes) < 20


def test_without_a_loop_a_line_is_written_at_once() -> None:
    stream = Writes()
    AccessLog(stream).write("one\n")
    assert stream.writes == ["one\n"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start(
    procs: list[subprocess.Popen[bytes]], routes: Path, env: dict[str, str], *args: str
) -> int:
    port = free_port()
    command = [
        sys.executable, "-m", "proxy", "serve", "--routes", str(routes),
        "--port", str(port), "--admin-port", str(free_port()), *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    procs.append(proc)
    wait_port(port)
    return port


def stop(proc: subprocess.Popen[bytes]) -> list[str]:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out.decode().splitlines()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_real_process_writes_one_json_line_per_request_to_stdout(
    upstream_factory, tmp_path: Path, serve, workers: str
) -> None:
    upstream = await upstream_factory(canned(respond(b"200 OK", b"hello")))
    routes = write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app")
    port = start(serve, routes, {"STRANGLER_ACCESS_LOG": "1"}, "--workers", workers)
    for n in range(30):
        request = b"GET /bookings/%d?q=1 HTTP/1.1\r\nHost: h\r\nX-Request-ID: req-%d\r\n\r\n" % (
            n,
            n,
        )
        response = await exchange(port, request)
        assert response.header(b"X-Request-ID") == b"req-%d" % n
    await asyncio.sleep(0.3)  # lines are flushed within FLUSH_SECONDS, before SIGTERM
    lines = [json.loads(line) for line in stop(serve[0]) if line.startswith("{")]
    assert sorted(line["request_id"] for line in lines) == sorted(f"req-{n}" for n in range(30))
    assert {(line["path"], line["status"], line["bytes_out"]) for line in lines} == {
        (f"/bookings/{n}", 200, 5) for n in range(30)
    }


async def test_switched_off_nothing_on_stdout(upstream_factory, tmp_path: Path, serve) -> None:
    upstream = await upstream_factory(canned(respond()))
    routes = write_routes(tmp_path / "routes.yaml", {"app": upstream.url}, "app")
    port = start(serve, routes, {"STRANGLER_ACCESS_LOG": "0"})
    assert (await exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")).status == 200
    await asyncio.sleep(0.2)
    assert stop(serve[0]) == []
