"""The build: the hot path (proxy/speedups.py's `HOT_PATH`) compiled with mypyc, and its C
twins (`ACCELERATORS`, Cython `.pyx`) compiled with Cython, where a C compiler and Python's
headers exist; the pure-Python package otherwise, or when `STRANGLER_NO_EXTENSIONS=1` is set at
build time. Everything else is in pyproject.toml.

Each extension is optional: a failed compile is a warning and the `.py` runs. The build records
the sources' hash (proxy/hotpath.sha256); the package refuses a compiled hot path whose sources
have changed since (proxy/speedups.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def speedups() -> Any:
    """proxy/speedups.py loaded by path (the package's __init__ is not for the build)."""
    spec = importlib.util.spec_from_file_location("_strangler_speedups", ROOT / "proxy/speedups.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The commands that build extensions; pip's metadata steps (egg_info, dist_info) run setup.py
# too, and need no mypyc run of their own.
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def hot_path_extensions() -> list[Any]:
    hot = speedups()
    if hot.disabled() or not BUILDS.intersection(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("strangler: mypyc unavailable, the hot path stays pure Python", file=sys.stderr)
        return []
    paths = [
        str(hot.source_path(module, ROOT / "proxy").relative_to(ROOT)) for module in hot.HOT_PATH
    ]
    flags = ["--config-file", os.devnull, "--ignore-missing-imports", "--python-version", "3.11"]
    try:
        extensions = mypycify(flags + paths, group_name=hot.GROUP)
    except Exception as exc:  # a mypyc failure must not fail the install: the .py runs
        print(f"strangler: mypyc failed ({exc}), the hot path stays pure Python", file=sys.stderr)
        return []
    extensions = list(extensions) + accelerator_extensions(hot)
    hot.MANIFEST.write_text(hot.source_hash(ROOT / "proxy") + "\n")
    for extension in extensions:
        extension.optional = True
    return extensions


def accelerator_extensions(hot: Any) -> list[Any]:
    """The `.pyx` twins; none without Cython (the build is then incomplete, and the package runs
    its Python source: proxy/speedups.py)."""
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        print("strangler: Cython unavailable, the hot path stays pure Python", file=sys.stderr)
        return []
    sources = [
        Extension(module, [str(hot.accelerator_path(module, ROOT / "proxy").relative_to(ROOT))])
        for module in hot.ACCELERATORS
    ]
    try:
        return list(cythonize(sources, build_dir="build/cython", quiet=True))
    except Exception as exc:  # as for mypyc: the .py runs
        print(f"strangler: Cython failed ({exc}), the hot path stays pure Python", file=sys.stderr)
        return []


setup(ext_modules=hot_path_extensions())
