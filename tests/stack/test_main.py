"""`make run` (python -m stack): everything comes up, answers, and goes down on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from stack.services import DEFAULT_PORTS, PORT_ENV
from tests.support import ROOT, free_port


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
            "legacy": f"http://127.0.0.1:{ports['legacy']}",
            "drf": f"http://127.0.0.1:{ports['drf']}",
            "proxy": f"http://127.0.0.1:{ports['proxy']}",
            "dashboard": f"http://127.0.0.1:{ports['proxy_admin']}/-/",
            "metrics": f"http://127.0.0.1:{ports['proxy_admin']}/metrics",
        }
        assert any("admin token: t0ken" in line for line in lines)
        request = urllib.request.Request(
            f"{urls['proxy']}/bookings/7", headers={"X-Application-Key": "demo"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["href"] == f"{urls['proxy']}/bookings/7"
        leaders = pgrep("-P", str(proc.pid))
        assert len(leaders) == 6
        members = {pid for leader in leaders for pid in pgrep("-g", str(leader))}
        assert len(members) == 8  # each gunicorn adds one worker
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0
    time.sleep(0.5)
    assert [pid for pid in members if alive(pid)] == []
