"""The hot path compiled with mypyc, and the switch back to its Python source.

`pip install` compiles the modules in `HOT_PATH` with mypyc where a C compiler and Python's
headers exist (setup.py); the `.py` files stay the source of truth, compiled as they are. An
extension module found next to its `.py` wins the import, so the way back to the source is
deliberate: `install()` (run by `proxy/__init__.py`, before any hot-path module is imported)
puts a finder first on `sys.meta_path` that loads the `.py` of every hot-path module when

- `STRANGLER_NO_EXTENSIONS` is set (to anything but "" or "0"), or
- the build is stale: the sources' hash differs from the one the build recorded in
  `proxy/hotpath.sha256` (an edited `.py` never runs as its old compiled self), or incomplete.

All or nothing: compiled modules call each other natively, so one `.py` among them would make
two copies of its classes. The same switch covers `ACCELERATORS`, the few functions written in
C (Cython `.pyx`) beside the `.py` they speed up: they run only where the compiled hot path does
(`accelerator`), and a build without them is incomplete. This module reads the environment
itself (not through `Settings`): the choice is made at import time, before anything else of the
proxy exists.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ENV = "STRANGLER_NO_EXTENSIONS"
PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "hotpath.sha256"
GROUP = "strangler_hotpath"  # mypyc's shared library: strangler_hotpath__mypyc.*.so
HOT_PATH = (
    "proxy.http.streams",
    "proxy.http.batch",
    "proxy.http.exchange",
    "proxy.http.messages",
    "proxy.http.connection",
    "proxy.http.pool",
    "proxy.dataplane.reading",
    "proxy.dataplane.listener",
    "proxy.dataplane.forward",
    "proxy.dataplane.heads",
    "proxy.dataplane.observers",
    "proxy.routing.model",
    "proxy.routing.patterns",
    "proxy.observe.series",
    "proxy.observe.accesslog",
    "proxy.migration.canary",
    "proxy.migration.guard",
    "proxy.migration.fallback",  # its KeptBody subclasses http.streams' BodyStream
)
# Cython modules, each the C twin of functions in the `.py` it is named after (`_heads.pyx`:
# heads.py's request_head and response_head), tested against them for the same results.
ACCELERATORS = ("proxy.dataplane._heads", "proxy.http._scan")


def source_path(module: str, package: Path = PACKAGE) -> Path:
    """`proxy.http.streams` -> <package>/http/streams.py"""
    return package.joinpath(*module.split(".")[1:]).with_suffix(".py")


def accelerator_path(module: str, package: Path = PACKAGE) -> Path:
    """`proxy.dataplane._heads` -> <package>/dataplane/_heads.pyx"""
    return source_path(module, package).with_suffix(".pyx")


def source_hash(package: Path = PACKAGE) -> str:
    """One sha256 over the hot path's sources, in `HOT_PATH` then `ACCELERATORS` order (names
    included)."""
    digest = hashlib.sha256()
    sources = [(module, source_path(module, package)) for module in HOT_PATH]
    sources += [(module, accelerator_path(module, package)) for module in ACCELERATORS]
    for module, path in sources:
        digest.update(module.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def built(module: str) -> bool:
    """Whether an extension module lies next to `module`'s `.py`."""
    source = source_path(module)
    return any(
        source.with_name(source.stem + suffix).exists()
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def disabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV, "") not in ("", "0")


def mode() -> str:
    """Why the hot path runs as it does: "compiled", or "python (<reason>)"."""
    if disabled():
        return f"python ({ENV}=1)"
    modules = HOT_PATH + ACCELERATORS
    present = [module for module in modules if built(module)]
    if not present:
        return "python (not compiled)"
    if len(present) < len(modules):
        return "python (incomplete build: pip install -e . rebuilds it)"
    recorded = MANIFEST.read_text().strip() if MANIFEST.exists() else ""
    if recorded != source_hash():
        return "python (sources changed since the build: pip install -e . rebuilds it)"
    return "compiled"


def accelerator(module: str, hot_path_mode: str) -> ModuleType | None:
    """`module` (one of `ACCELERATORS`) when `hot_path_mode` (what `install` decided at import:
    `proxy.HOT_PATH_MODE`) is "compiled", else None: the caller then uses the `.py` functions it
    twins. The import's decision, not a new `mode()`: the twins run exactly where the compiled
    modules do, and the sources are not read and hashed again."""
    if module not in ACCELERATORS:
        raise ValueError(f"not an accelerator: {module}")
    if hot_path_mode != "compiled":
        return None
    return importlib.import_module(module)


class SourceFirst:
    """Finds the hot path's modules as `.py` (or their bytecode cache), never as extensions.

    A plain class: a meta path finder needs only `find_spec`, and importing `importlib.abc` (with
    importlib.resources, tempfile, typing) would cost every `strangler` command about 15 ms.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in HOT_PATH or not path:
            return None
        loaders = (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, loaders).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


def install() -> str:
    """Put `SourceFirst` first on `sys.meta_path` unless the compiled hot path may run; the
    mode (see `mode`)."""
    found = mode()
    if found != "compiled" and not any(isinstance(f, SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())
    return found
