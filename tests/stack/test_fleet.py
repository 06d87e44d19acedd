"""`make fleet` (python -m stack fleet): etcd and three proxy replicas on it come up, a flip
with `strangler flip --store` reaches all three, and everything goes down on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from stack.services import DEFAULT_PORTS, FLEET_PORTS, PORT_ENV
from tests.stack.test_main import alive, pgrep, wait_for_line
from tests.support import ROOT, free_port

REPLICAS = (("proxy", "proxy_admin"), ("proxy_2", "proxy_admin_2"), ("proxy_3", "proxy_admin_3"))


def get_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"X-Application-Key": "demo"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def backends_of(admins: list[str], resource: str) -> list[str]:
    return [get_json(f"{admin}/-/routes")["resources"][resource]["backend"] for admin in admins]


def strangler(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=30, env=env
    )


def test_the_fleet_starts_seeds_the_store_and_a_flip_reaches_every_replica(
    tmp_path: Path,
) -> None:
    ports = {key: free_port() for key in {**DEFAULT_PORTS, **FLEET_PORTS}}
    env = {
        **os.environ,
        **{PORT_ENV[key]: str(port) for key, port in ports.items()},
        "STRANGLER_DATA_DIR": str(tmp_path / "data"),
        "STRANGLER_ADMIN_TOKEN": "t0ken",
        "GATEWAY_WORKERS": "1",
        "XDG_STATE_HOME": str(tmp_path / "state"),  # where `strangler store` records pulls
    }
    store = f"etcd://127.0.0.1:{ports['etcd']}/strangler"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack", "fleet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = wait_for_line(proc, "stack is up", timeout=120)
        urls = {line.split()[0]: line.split()[1] for line in lines if "http://" in line}
        local = "http://127.0.0.1:{}".format
        assert urls == {
            **{name: local(ports[name]) for name in ("reservations", "crm", "operations", "auth")},
            "legacy": local(ports["legacy"]),
            "drf": local(ports["drf"]),
            "etcd": local(ports["etcd"]),
            "proxy": local(ports["proxy"]),
            "proxy-2": local(ports["proxy_2"]),
            "proxy-3": local(ports["proxy_3"]),
            "dashboard": f"{local(ports['proxy_admin'])}/-/",
            "dashboard-2": f"{local(ports['proxy_admin_2'])}/-/",
            "dashboard-3": f"{local(ports['proxy_admin_3'])}/-/",
            "metrics": f"{local(ports['proxy_admin'])}/metrics",
            "metrics-2": f"{local(ports['proxy_admin_2'])}/metrics",
            "metrics-3": f"{local(ports['proxy_admin_3'])}/metrics",
        }
        assert f"store         {store}" in lines
        assert any("admin token: t0ken" in line for line in lines)

        for public, _ in REPLICAS:
            href = f"{local(ports[public])}/bookings/7"
            assert get_json(href)["href"] == href
        pulled = strangler(env, "store", "pull", "--store", store)
        assert (pulled.returncode, pulled.stdout) == (0, (ROOT / "routes.yaml").read_text())
        admins = [local(ports[admin]) for _, admin in REPLICAS]
        assert backends_of(admins, "bookings") == ["legacy"] * 3

        flipped = strangler(
            env, "flip", "bookings", "drf", "--store", store, "--reason", "fleet test"
        )
        assert flipped.returncode == 0, flipped.stderr
        written = re.fullmatch(r"bookings: legacy -> drf \(revision (\d+)\)\n", flipped.stdout)
        assert written is not None, flipped.stdout
        deadline = time.monotonic() + 5
        while backends_of(admins, "bookings") != ["drf"] * 3:
            assert time.monotonic() < deadline, backends_of(admins, "bookings")
            time.sleep(0.02)
        deadline = time.monotonic() + 5
        while (fleet := get_json(f"{admins[2]}/-/fleet"))["lagging"] or len(fleet["replicas"]) < 3:
            assert time.monotonic() < deadline, fleet
            time.sleep(0.05)
        assert fleet["revision"] == int(written[1])
        assert [replica["revision"] for replica in fleet["replicas"]] == [int(written[1])] * 3

        leaders = pgrep("-P", str(proc.pid))
        assert len(leaders) == 10  # 3 sources, auth, 2 gateways, etcd, 3 proxies; seed done
        members = {pid for leader in leaders for pid in pgrep("-g", str(leader))}
        assert len(members) == 12  # each gunicorn adds one worker
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0
    deadline = time.monotonic() + 5
    while [pid for pid in members if alive(pid)]:
        assert time.monotonic() < deadline, [pid for pid in members if alive(pid)]
        time.sleep(0.05)
