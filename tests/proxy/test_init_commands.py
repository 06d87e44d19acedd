"""`strangler init` as a process: the table on stdout (exactly `proxy.routing.scaffold`'s), which
`strangler validate` accepts; clear errors, exit 1; usage errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from proxy.routing import scaffold
from tests.support import ROOT


def strangler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_init_from_openapi_then_validate(tmp_path: Path) -> None:
    done = strangler(
        "init", "--from-openapi", "openapi.yaml", "--default", "legacy",
        "--backend", "legacy=http://10.0.0.5:5000", "--backend", "drf=http://10.0.0.6:8000",
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    backends = (("legacy", "http://10.0.0.5:5000"), ("drf", "http://10.0.0.6:8000"))
    expected = scaffold.routes_text(
        scaffold.from_openapi(spec), backends, "legacy", source="the OpenAPI document openapi.yaml"
    )
    assert done.stdout == expected
    routes = tmp_path / "routes.yaml"
    routes.write_text(done.stdout)
    assert strangler("validate", "--routes", str(routes)).stdout == "OK\n"


def test_init_from_an_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = [{"path": "/tours/1"}, {"path": "/bookings"}, {"path": "/tours?x"}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = strangler("init", "--from-access-log", str(log))
    assert done.returncode == 0, done.stderr
    assert "  tours: legacy  # 2 requests\n  bookings: legacy  # 1 requests\n" in done.stdout
    routes = tmp_path / "routes.yaml"
    routes.write_text(done.stdout)
    assert strangler("validate", "--routes", str(routes)).returncode == 0


def test_errors(tmp_path: Path) -> None:
    missing = strangler("init", "--from-openapi", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("strangler init: [Errno 2] No such file or directory")
    bad = strangler("init", "--from-openapi", "openapi.yaml", "--backend", "legacy")
    assert (bad.returncode, bad.stderr) == (
        1,
        "strangler init: --backend 'legacy' is not NAME=URL\n",
    )
    unknown = strangler("init", "--from-openapi", "openapi.yaml", "--default", "new")
    assert unknown.stderr == (
        "strangler init: the default backend 'new' is not one of legacy, drf\n"
    )
    both = strangler("init", "--from-openapi", "a", "--from-access-log", "b")
    assert both.returncode == 2
    (tmp_path / "list.yaml").write_text("- a\n")
    assert strangler("init", "--from-openapi", str(tmp_path / "list.yaml")).stderr == (
        f"strangler init: {tmp_path / 'list.yaml'}: not an OpenAPI 3 document\n"
    )
