"""`make run` (python -m stack): everything comes up, answers, and goes down on SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from proxy.dryrun import SECRET_VARIABLE, sign
from stack.__main__ import summary
from stack.services import DEFAULT_PORTS, PORT_ENV, StackConfig
from tests.support import ROOT, free_port

SECRET = "stack-test-secret"


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s; got {lines}")


def pgrep(*args: str) -> list[int]:
    found = subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_stack_starts_prints_its_urls_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ports = {key: free_port() for key in DEFAULT_PORTS}
    env = {
        **os.environ,
        **{PORT_ENV[key]: str(port) for key, port in ports.items()},
        "STRANGLER_DATA_DIR": str(tmp_path / "data"),
        "STRANGLER_ADMIN_TOKEN": "t0ken",
        "GATEWAY_WORKERS": "1",
        SECRET_VARIABLE: SECRET,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = wait_for_line(proc, "stack is up", timeout=90)
        urls = {line.split()[0]: line.split()[1] for line in lines if "http://" in line}
        assert urls == {
            "reservations": f"http://127.0.0.1:{ports['reservations']}",
            "crm": f"http://127.0.0.1:{ports['crm']}",
            "operations": f"http://127.0.0.1:{ports['operations']}",
            "auth": f"http://127.0.0.1:{ports['auth']}",
            "legacy": f"http://127.0.0.1:{ports['legacy']}",
            "drf": f"http://127.0.0.1:{ports['drf']}",
            "proxy": f"http://127.0.0.1:{ports['proxy']}",
            "dashboard": f"http://127.0.0.1:{ports['proxy_admin']}/-/",
            "metrics": f"http://127.0.0.1:{ports['proxy_admin']}/metrics",
        }
        assert any("admin token: t0ken" in line for line in lines)
        assert "write shadowing is available (dry-run secret from the environment)" in lines
        assert not any(SECRET in line for line in lines)
        for gateway in ("legacy", "drf"):
            assert dry_run_post(urls[gateway], urls["reservations"]) == 201
        data = tmp_path / "data"
        assert sorted(p.name for p in data.glob("*.ctl")) == [
            "drf.gunicorn.ctl",
            "legacy.gunicorn.ctl",
        ]
        request = urllib.request.Request(
            f"{urls['proxy']}/bookings/7", headers={"X-Application-Key": "demo"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["href"] == f"{urls['proxy']}/bookings/7"
        assert "oauth client  demo-client:demo-secret (scope read write)" in lines
        bearer = {"Authorization": f"Bearer {demo_token(urls['auth'])}"}
        request = urllib.request.Request(f"{urls['proxy']}/bookings/7", headers=bearer)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["href"] == f"{urls['proxy']}/bookings/7"
        leaders = pgrep("-P", str(proc.pid))
        assert len(leaders) == 7
        members = {pid for leader in leaders for pid in pgrep("-g", str(leader))}
        assert len(members) == 9  # each gunicorn adds one worker
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0
    time.sleep(0.5)
    assert [pid for pid in members if alive(pid)] == []


def demo_token(auth: str) -> str:
    """An access token of the demo client the summary prints."""
    basic = base64.b64encode(b"demo-client:demo-secret").decode()
    request = urllib.request.Request(
        f"{auth}/oauth/token",
        b"grant_type=client_credentials",
        {"Authorization": f"Basic {basic}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["access_token"])


def dry_run_post(gateway: str, reservations: str) -> int:
    """A dry-run POST /bookings signed with the stack's secret; asserts nothing was stored."""
    count = f"{reservations}/bookings?limit=0"
    with urllib.request.urlopen(count, timeout=10) as response:
        before = json.load(response)
    body = json.dumps(
        {
            "customer_id": 1,
            "departure_id": 1,
            "travellers": 1,
            "currency": "EUR",
            "total_amount": "10.00",
        }
    ).encode()
    headers = {
        "X-Application-Key": "demo",
        "Content-Type": "application/json",
        **sign(SECRET, "POST", "/bookings", body, time.time()),
    }
    request = urllib.request.Request(f"{gateway}/bookings", body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        status = int(response.status)
    with urllib.request.urlopen(count, timeout=10) as response:
        assert json.load(response) == before
    return status


def test_the_summary_says_write_shadowing_is_available_and_never_prints_the_secret() -> None:
    config = replace(StackConfig.from_env({}), shadow_secret="s3cr3t-" * 8)
    text = summary(config, "t0ken", "generated for this run")
    assert "write shadowing is available (dry-run secret generated for this run)" in text
    assert "s3cr3t-" not in text


def test_the_summary_lists_the_demo_oauth_clients_but_not_the_gateways() -> None:
    text = summary(StackConfig.from_env({}), "t0ken", "generated for this run")
    assert "auth          http://127.0.0.1:5104" in text.splitlines()
    assert [line for line in text.splitlines() if line.startswith("oauth client")] == [
        "oauth client  demo-client:demo-secret (scope read write)",
        "oauth client  demo-reader:demo-reader-secret (scope read)",
    ]
    assert "gateway-secret" not in text
