"""README's "Use it for your own API", run as written: the `sh` block's commands, one by one, in a
fresh directory against two tiny backends (the old API and the new one, real servers on
loopback). The install is real: a new venv, `pip install ./strangler` from a copy of what the
distribution is built from, and only the proxy's own dependencies come with it.

Only ports change: the backends listen where the kernel put them, the proxy on free ports (its
`serve` line gets `--port` and `--admin-port`, since it shows the defaults by leaving them out).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from tests.support import ROOT, free_port, serve_on_loopback

YOUR_API = {
    "openapi": "3.0.3",
    "info": {"title": "your API", "version": "1"},
    "paths": {
        "/orders": {"get": {"responses": {"200": {"description": "orders"}}}},
        "/orders/{id}": {"get": {"responses": {"200": {"description": "an order"}}}},
        "/invoices/{id}": {"get": {"responses": {"200": {"description": "an invoice"}}}},
    },
}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it for your own API\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def tiny_backend(name: str) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "served_by": name})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, int]]:
    runners = []
    ports = {}
    for name, default_port in (("old", 9001), ("new", 9002)):
        runner = web.AppRunner(tiny_backend(name), access_log=None)
        await runner.setup()
        ports[str(default_port)] = await serve_on_loopback(runner)
        runners.append(runner)
    try:
        yield ports
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding `strangler/` (what the distribution is built from) and your-api.yaml."""
    checkout = tmp_path / "strangler"
    checkout.mkdir()
    shutil.copy(ROOT / "pyproject.toml", checkout)
    shutil.copy(ROOT / "README.md", checkout)
    shutil.copytree(
        ROOT / "proxy",
        checkout / "proxy",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "hotpath.sha256"),
    )
    (tmp_path / "your-api.yaml").write_text(yaml.safe_dump(YOUR_API))
    yield tmp_path


async def test_the_readme_quickstart_runs_as_written(
    backends: dict[str, int], workdir: Path
) -> None:
    commands = readme_commands()
    assert [command.split()[0] for command in commands] == [
        "python3", "strangler-env/bin/pip", "strangler-env/bin/strangler",
        "strangler-env/bin/strangler", "strangler-env/bin/strangler", "curl",
        "strangler-env/bin/strangler", "curl",
    ]  # fmt: skip
    port, admin = free_port(), free_port()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    outputs: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for command in commands:
            line = command.replace("python3 ", f"{sys.executable} ", 1)
            line = line.replace(":8080/", f":{port}/")
            for default_port, actual in backends.items():
                line = line.replace(f":{default_port}", f":{actual}")
            if line.endswith(" &"):
                line = line[:-2] + f" --port {port} --admin-port {admin}"
                # exec: the shell becomes the server, so that terminate() below reaches it
                # (dash forks for `sh -c`, and the server outlived every run)
                server = subprocess.Popen(f"exec {line}", shell=True, cwd=workdir, env=env)
                wait_until_ready(admin)
                continue
            # off the event loop: the tiny backends answer on it meanwhile
            done = await asyncio.to_thread(
                subprocess.run,
                line, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    routes = (workdir / "routes.yaml").read_text()
    # init listed both on legacy; the flip changed the orders line alone
    assert routes.endswith(
        "resources:\n  invoices: legacy  # /invoices/{id}\n  orders: new  # /orders, /orders/{id}\n"
    )
    assert outputs[3] == "OK\n"  # validate
    assert json.loads(outputs[4]) == {"path": "/orders/1", "served_by": "old"}
    assert json.loads(outputs[6]) == {"path": "/orders/1", "served_by": "new"}
    (audit,) = (workdir / "routes.audit.jsonl").read_text().splitlines()
    entry = json.loads(audit)
    assert (entry["resource"], entry["from"], entry["to"], entry["user"]) == (
        "orders", "legacy", "new", "you@example.com",
    )  # fmt: skip
    # the proxy alone: none of the demo world's packages or dependencies came with it
    python = workdir / "strangler-env" / "bin" / "python"
    for module in ("flask", "django", "rest_framework", "gunicorn", "requests", "legacy_flask"):
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, cwd="/")
        assert probe.returncode == 1, module


def wait_until_ready(admin: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/-/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.1)
