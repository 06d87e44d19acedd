"""proxy.cli: `python -m proxy validate|flip|rollback|status` as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from proxy import arguments
from proxy.cli import main
from proxy.control.admin import make_admin_app
from proxy.routing import rollout_edit
from tests.support import free_port
from tests.support.control import ROUTES, make_state, write


def strangler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USER": "ana", "LOGNAME": "ana"}  # the login name getpass reads
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def result(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def test_validate_ok(tmp_path: Path) -> None:
    write(tmp_path / "routes.yaml")
    assert result(strangler("validate", cwd=tmp_path)) == (0, "OK\n", "")


def test_validate_prints_every_error(tmp_path: Path) -> None:
    path = write(tmp_path / "custom.yaml", ROUTES.replace("version: 1", "version: 3").replace(
        "tours: drf", "tours: drff"))  # fmt: skip
    assert result(strangler("validate", "--routes", "custom.yaml", cwd=tmp_path)) == (
        1,
        "",
        "custom.yaml:2: version must be 1, got 3\n"
        "custom.yaml:17: unknown backend 'drff' for resource 'tours'\n",
    )
    assert path.exists()


def test_validate_missing_file(tmp_path: Path) -> None:
    assert result(strangler("validate", cwd=tmp_path)) == (
        1, "", "routes.yaml: cannot read: No such file or directory\n"
    )  # fmt: skip


def test_flip_and_rollback(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.yaml")
    done = strangler("flip", "bookings", "drf", "--reason", "green", cwd=tmp_path)
    assert result(done) == (0, "bookings: legacy -> drf\n", "")
    assert routes.read_text() == ROUTES.replace("bookings: legacy   ", "bookings: drf   ")
    entry = json.loads((tmp_path / "routes.audit.jsonl").read_text())
    assert (entry["user"], entry["reason"], entry["action"]) == ("ana", "green", "flip")
    assert result(strangler("flip", "bookings", "drf", cwd=tmp_path)) == (
        0, "bookings: already on drf, nothing changed\n", ""
    )  # fmt: skip
    assert result(strangler("rollback", "bookings", cwd=tmp_path)) == (
        0, "bookings: drf -> legacy (rollback)\n", ""
    )  # fmt: skip
    assert routes.read_text() == ROUTES
    assert result(strangler("rollback", "tours", "--reason", "x", cwd=tmp_path)) == (
        0, "tours: drf -> legacy (rollback)\n", ""
    )  # fmt: skip


def test_flip_errors(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.yaml")
    assert result(strangler("flip", "bookings", "drff", cwd=tmp_path)) == (
        1, "", "strangler flip: unknown backend 'drff' (backends: drf, legacy)\n"
    )  # fmt: skip
    link = tmp_path / "link.yaml"
    link.symlink_to(routes.name)
    code, out, err = result(strangler("flip", "bookings", "drf", "--routes", "link.yaml",
                                      cwd=tmp_path))  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith("strangler flip: link.yaml is a symbolic link")
    assert err.count("\n") == 1
    assert routes.read_text() == ROUTES


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, out, err = result(strangler("flip", "bookings", cwd=tmp_path))
    assert (code, out) == (2, "")
    assert "the following arguments are required: backend" in err
    assert strangler("nope", cwd=tmp_path).returncode == 2
    assert strangler(cwd=tmp_path).returncode == 2


def test_main_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes = write(tmp_path / "routes.yaml")
    assert main(["validate", "--routes", str(routes)]) == 0
    assert capsys.readouterr().out == "OK\n"
    assert main(["--help"]) == 0


async def test_status(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml"))
    state.last_reload_error = "routes.yaml:3: oops"
    server = TestServer(make_admin_app(state), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "status", "--admin", str(server.make_url("")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await server.close()
    assert (proc.returncode, err) == (0, b"")
    lines = out.decode().splitlines()
    assert lines[0] == f"source:      {state.settings.routes} (version 1)"
    assert lines[1] == f"sha256:      {state.table.sha256}"
    assert lines[2].startswith("loaded at:   20")
    assert lines[3:] == [
        "last reload: failed: routes.yaml:3: oops",
        "progress:    3 legacy, 1 retired; last 5m: no requests",
        "RESOURCE     STAGE    BACKEND  METHODS   REQ/S  ERRORS",
        "bookings     legacy   legacy   -         0.0    -",
        "customers    legacy   legacy   -         0.0    -",
        "itineraries  legacy   legacy   GET->drf  0.0    -",
        "tours        retired  drf      -         0.0    -",
        "(other)      legacy   legacy   -         0.0    -",
    ]


def test_status_unreachable(tmp_path: Path) -> None:
    port = free_port()
    assert result(strangler("status", "--admin", f"http://127.0.0.1:{port}", cwd=tmp_path)) == (
        1, "", f"strangler status: cannot read http://127.0.0.1:{port}/-/routes: "
               "[Errno 111] Connection refused\n",
    )  # fmt: skip


# Once imported by every `strangler` command, now only by those that run on them (milliseconds
# to tens of them each): the store's event loop (aiohttp and the server bring it too), the admin
# API's http.client and email, the shadow report's classes (diffs), the scaffold (init), git's
# subprocess (an author without a login name); importlib.abc was proxy.speedups' base class.
ON_DEMAND = (
    *("asyncio", "email", "http.client", "importlib.abc", "proxy.control.export"),
    *("proxy.migration.diff", "proxy.routing.scaffold", "subprocess", "urllib.request"),
)
# ...and the routing table's, by the commands that read routes.yaml
TABLE = ("proxy.routing.edit", "proxy.routing.model", "proxy.routing.parser", "ssl", "yaml")
REPORT = "import json, sys; print(json.dumps(sorted(set(sys.argv[1:]) & set(sys.modules))))"


def imported(code: str, names: tuple[str, ...], cwd: Path) -> list[str]:
    """Which of `names` a fresh interpreter holds once it has run `code`."""
    env = {**os.environ, "USER": "ana", "LOGNAME": "ana"}
    done = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}", *names], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_a_command_imports_only_what_it_runs_on(tmp_path: Path) -> None:
    assert imported("import proxy.cli", ON_DEMAND + TABLE, tmp_path) == []
    write(tmp_path / "routes.yaml")
    run = "from proxy.cli import main\nmain(['validate'])\nmain(['flip', 'bookings', 'drf'])"
    assert imported(run, ON_DEMAND, tmp_path) == []
    assert (tmp_path / "routes.audit.jsonl").exists()  # the flip did run


def test_the_command_line_copies_of_constants_match_their_sources() -> None:
    assert arguments.ROLLOUT_ACTIONS == rollout_edit.ACTIONS
