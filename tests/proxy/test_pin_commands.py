"""proxy.pin_commands: `strangler pin` and `strangler flip` of a nested key as real processes on a
routes file (byte-level diffs: only the added lines), and status's PINNED column."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from proxy.control.admin import make_admin_app
from tests.support import free_port
from tests.support.control import make_state

ROUTES = """\
# a table of a team with nested keys
version: 1
backends:
  legacy:
    url: http://127.0.0.1:5000
  drf:
    url: http://127.0.0.1:8000
default: legacy
resources:
  bookings:                      # long form
    backend: drf
    canary: {backend: legacy, percent: 5}
  tours: drf
  tours/*/departures: legacy     # nested: /tours/{id}/departures and below
"""
DIGEST = hashlib.sha256(b"key-of-broken-client").hexdigest()


def strangler(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRANGLER_USER": "ana"}
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=30, input=stdin,
    )  # fmt: skip


def added(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails if it removed or changed any."""
    lines = difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True))
    changed = [line for line in lines if line[:1] in "+-"]
    assert [line for line in changed if line[:1] == "-"] == []
    return [line[2:] for line in changed]


def audit(directory: Path) -> list[dict[str, str]]:
    lines = (directory / "routes.audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_pin_a_header_writes_its_digest_and_only_adds_lines(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    done = strangler(
        "pin", "bookings", "--header", "X-Application-Key", "--value", "key-of-broken-client",
        "--backend", "legacy", "--reason", "client 42 breaks on DRF", cwd=tmp_path,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"bookings: header:X-Application-Key sha256:{DIGEST[:8]}… -> legacy (pinned)\n"
    )
    after = (tmp_path / "routes.yaml").read_text()
    assert added(ROUTES, after) == [
        "    clients:\n",
        f'      - {{match: "header:X-Application-Key", value_sha256: "{DIGEST}", '
        "backend: legacy}\n",
    ]
    assert "key-of-broken-client" not in after
    [entry] = audit(tmp_path)
    assert (entry["user"], entry["resource"], entry["action"]) == ("ana", "bookings", "pin")
    assert strangler("validate", cwd=tmp_path).stdout == "OK\n"


def test_pin_a_cookie_from_stdin_and_a_network_on_a_nested_key(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    cookie = strangler(
        "pin", "tours/*/departures", "--cookie", "session", "--value", "-", "--backend", "drf",
        cwd=tmp_path, stdin="s3cret-session\n",
    )  # fmt: skip
    network = strangler(
        "pin", "tours/*/departures", "--client-ip", "10.0.0.0/8", "--backend", "drf", cwd=tmp_path
    )
    assert (cookie.returncode, network.returncode) == (0, 0)
    digest = hashlib.sha256(b"s3cret-session").hexdigest()
    after = (tmp_path / "routes.yaml").read_text()
    assert after.splitlines()[-5:] == [
        "  tours/*/departures:     # nested: /tours/{id}/departures and below",
        "    backend: legacy",
        "    clients:",
        f'      - {{match: "cookie:session", value_sha256: "{digest}", backend: drf}}',
        '      - {match: client_ip, value: "10.0.0.0/8", backend: drf}',
    ]
    assert after.splitlines()[:-5] == ROUTES.splitlines()[:-1]  # every line above: unchanged


def test_pin_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    cases = [
        (("--header", "X-Key"), 2, "strangler pin: --header and --cookie need --value\n"),
        (
            ("--client-ip", "10.0.0.0/8", "--value", "x"),
            2,
            "strangler pin: --client-ip takes no --value (the address or network is the value)\n",
        ),
        (
            ("--client-ip", "10.0.0.1/8"),
            1,
            "strangler pin: '10.0.0.1/8' is not an IP address or a CIDR network "
            "(no host bits set)\n",
        ),
    ]
    for args, code, message in cases:
        done = strangler("pin", "bookings", *args, "--backend", "legacy", cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (code, "", message)
    done = strangler("pin", "bookings", "--value", "x", "--backend", "legacy", cwd=tmp_path)
    assert done.returncode == 2 and "one of the arguments" in done.stderr
    assert (tmp_path / "routes.yaml").read_text() == ROUTES


def test_flip_and_rollback_of_a_nested_key(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    done = strangler("flip", "tours/*/departures", "drf", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "tours/*/departures: legacy -> drf\n",
        "",
    )
    after = (tmp_path / "routes.yaml").read_text()
    assert after == ROUTES.replace("tours/*/departures: legacy ", "tours/*/departures: drf ")
    done = strangler("rollback", "tours/*/departures", cwd=tmp_path)
    assert done.stdout == "tours/*/departures: drf -> legacy (rollback)\n"
    assert (tmp_path / "routes.yaml").read_text() == ROUTES


async def test_status_and_the_admin_api_show_the_pins(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        ROUTES.replace(
            "    canary: {backend: legacy, percent: 5}\n",
            "    canary: {backend: legacy, percent: 5}\n"
            "    clients:\n"
            f'      - {{match: "header:X-Key", value_sha256: "{DIGEST}", backend: legacy}}\n'
            '      - {match: client_ip, value: "10.0.0.0/8", backend: legacy}\n'
            '      - {match: "cookie:beta", value: "yes", backend: drf}\n',
        )
    )
    state = make_state(routes)
    server = TestServer(make_admin_app(state), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url("/-/routes")) as response:
                body = await response.json()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "status", "--admin", str(server.make_url("")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await server.close()
    assert (proc.returncode, err) == (0, b"")
    assert body["resources"]["bookings"]["clients"] == [  # the value in clear only as its digest
        {"match": "header:X-Key", "value_sha256": DIGEST, "backend": "legacy"},
        {"match": "client_ip", "value": "10.0.0.0/8", "backend": "legacy"},
        {"match": "cookie:beta", "value_sha256": hashlib.sha256(b"yes").hexdigest(),
         "backend": "drf"},
    ]  # fmt: skip
    assert body["resources"]["tours/*/departures"]["clients"] == []
    table = out.decode().splitlines()[5:]
    assert table[0].split() == [
        "RESOURCE",
        "STAGE",
        "BACKEND",
        "METHODS",
        "REQ/S",
        "ERRORS",
        "PINNED",
    ]
    assert [line.split()[-1] for line in table[1:]] == ["1->drf,2->legacy", "-", "-", "-"]
