"""The compiled hot path's switch: `STRANGLER_NO_EXTENSIONS=1`, a stale or incomplete build and
an unbuilt tree all import the `.py` sources. Proved in a copy of the package whose extension
modules are garbage files: the import only succeeds if the loader never touches them."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import proxy
from proxy import speedups
from tests.support import ROOT

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
PROBE = (
    "import importlib, proxy\n"
    "files = [importlib.import_module(m).__file__ for m in proxy.speedups.HOT_PATH]\n"
    "print(proxy.HOT_PATH_MODE)\n"
    "print(all(f.endswith('.py') for f in files))\n"
)


@pytest.fixture
def fake_build(tmp_path: Path) -> Path:
    """A copy of proxy/ with a garbage extension beside every hot-path module and the build's
    hash of its sources."""
    copy = tmp_path / "proxy"
    shutil.copytree(ROOT / "proxy", copy, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for module in speedups.HOT_PATH + speedups.ACCELERATORS:
        source = speedups.source_path(module, copy)
        source.with_name(source.stem + SUFFIX).write_bytes(b"not an extension")
    (copy / "hotpath.sha256").write_text(speedups.source_hash(copy) + "\n")
    return tmp_path


def probe(root: Path, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != speedups.ENV} | env
    environ["PYTHONPATH"] = str(ROOT)  # tests.support and friends; `proxy` comes from cwd
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=root, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:2]


def test_the_switch_loads_every_hot_module_from_its_source(fake_build: Path) -> None:
    assert probe(fake_build, STRANGLER_NO_EXTENSIONS="1") == [
        "python (STRANGLER_NO_EXTENSIONS=1)",
        "True",
    ]


# a hot-path module (mypyc) and a C twin (Cython): http/batch.py and dataplane/_heads.pyx
SOURCES = [
    speedups.source_path(speedups.HOT_PATH[1]),
    speedups.accelerator_path(speedups.ACCELERATORS[0]),
]


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_a_changed_source_never_runs_as_its_old_extension(fake_build: Path, source: Path) -> None:
    edited = fake_build / source.relative_to(ROOT)
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    mode, from_source = probe(fake_build)
    assert mode.startswith("python (sources changed since the build")
    assert from_source == "True"


@pytest.mark.parametrize("module", [speedups.HOT_PATH[0], speedups.ACCELERATORS[0]])
def test_an_incomplete_build_is_not_used(fake_build: Path, module: str) -> None:
    source = speedups.source_path(module, fake_build / "proxy")
    source.with_name(source.stem + SUFFIX).unlink()
    mode, from_source = probe(fake_build)
    assert mode.startswith("python (incomplete build")
    assert from_source == "True"


def test_c_twins_are_named_for_what_they_twin() -> None:
    with pytest.raises(ValueError, match="not an accelerator"):
        speedups.accelerator("proxy.dataplane.heads", "compiled")


def test_c_twins_run_only_where_the_import_chose_the_compiled_hot_path() -> None:
    twin = speedups.ACCELERATORS[0]
    assert speedups.accelerator(twin, "python (STRANGLER_NO_EXTENSIONS=1)") is None


def test_zero_or_empty_leaves_the_extensions_on() -> None:
    assert not speedups.disabled({})
    assert not speedups.disabled({speedups.ENV: ""})
    assert not speedups.disabled({speedups.ENV: "0"})
    assert speedups.disabled({speedups.ENV: "1"})


def test_this_process_runs_what_its_mode_says() -> None:
    from proxy.http import streams

    compiled = not (streams.__file__ or "").endswith(".py")
    assert compiled == (proxy.HOT_PATH_MODE == "compiled"), proxy.HOT_PATH_MODE
