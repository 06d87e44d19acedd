"""The distribution `strangler`: built as a wheel from this repository, it holds the proxy alone
and declares only what the proxy needs; the demo world's dependencies are the `demo` extra."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import ROOT

PROXY_NEEDS = {"aiohttp", "pyyaml", "prometheus-client", "watchfiles", "httptools", "uvloop"}
# What a build leaves in a working tree (compiled hot path included) stays out of the copy.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "var",
    "__pycache__",
    "*.egg-info",
    "build",
    ".*_cache",
    "*.so",
    "hotpath.sha256",
    ".mypyc_build",
)
DEMO_NEEDS = {"flask", "django", "djangorestframework", "gunicorn", "requests", "defusedxml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    # a copy of the whole repository (what git tracks and more): the build's own files
    # (build/, *.egg-info) stay out of the checkout
    shutil.copytree(ROOT, source, dirs_exist_ok=True, ignore=IGNORED)
    # The pure-Python wheel (STRANGLER_NO_EXTENSIONS=1): what every machine can build, quickly;
    # the compiled hot path is tested by tests/proxy/test_speedups.py and the suite itself.
    env = {**os.environ, "STRANGLER_NO_EXTENSIONS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (found,) = out.glob("strangler-*.whl")
    return found


def requirement_name(line: str) -> str:
    name = line.split(";")[0].strip()
    for stop in "<>=!~[ (":
        name = name.split(stop)[0]
    return name.lower()


def test_declared_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(archive.read(metadata))
    requires = message.get_all("Requires-Dist") or []
    core = {requirement_name(line) for line in requires if "extra ==" not in line}
    demo = {requirement_name(line) for line in requires if 'extra == "demo"' in line}
    assert core == PROXY_NEEDS
    assert demo == DEMO_NEEDS
    assert set(message.get_all("Provides-Extra") or []) == {"demo", "dev"}
    assert message["Name"] == "strangler"


def test_contents_are_the_proxy_alone(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packages = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert packages == {"proxy"}
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "proxy").rglob("*.py")}
    assert sources <= set(names)
    # the C twins' sources too: the installed package hashes them to know its build is current
    assert "proxy/dataplane/_heads.pyx" in names
    # the dashboard's page and assets come with it
    for asset in ("dashboard.html", "dashboard.css", "dashboard.js"):
        assert f"proxy/control/static/{asset}" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    entry_points = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        assert "strangler = proxy.cli:main" in archive.read(entry_points[0]).decode()
