"""The shape of `proxy/`: imports run one way between its packages, never in a cycle, and no
module grows past 400 lines. Read from the source with `ast`, so it holds for every module,
imported by a test or not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PROXY = ROOT / "proxy"
MAX_LINES = 400
# Lower layers know nothing of higher ones: a module imports only from its own package or from a
# lower layer. `dataplane` (the request path) and `control` (the admin side) share a layer and
# know nothing of each other.
LAYERS: dict[str, int] = {
    "proxy.settings": 0,
    "proxy.errors": 0,
    "proxy.clock": 0,
    "proxy.tasks": 0,
    "proxy.dryrun": 0,  # the signed dry-run headers of shadowed writes (also for the gateways)
    "proxy.speedups": -1,  # the compiled hot path's switch, run first by the package's __init__
    "proxy.routing": 1,
    "proxy.http": 2,
    "proxy.observe": 3,
    "proxy.migration": 4,
    "proxy.state": 5,
    "proxy.dataplane": 6,
    "proxy.control": 6,
    "proxy.arguments": 6,  # `strangler`'s command line; the commands read their defaults from it
    "proxy.ready_text": 6,  # the admin API's JSON as text: ready, parts of status (and diffs)
    "proxy.server": 7,
    "proxy.store_commands": 7,  # `strangler store …`, flip/rollback --store (for proxy.cli)
    "proxy.rollout_commands": 7,  # `strangler rollout …` (for proxy.cli)
    "proxy.group_commands": 7,  # `flip`/`rollback --group` on routes.yaml (for proxy.cli)
    "proxy.diffs_commands": 7,  # `strangler diffs …`: the report as text, --noise, --export
    "proxy.init_commands": 7,  # `strangler init`: a first routes.yaml from a spec or a log
    "proxy.pin_commands": 7,  # `strangler pin` on routes.yaml (for proxy.cli)
    "proxy.cli": 8,
    "proxy.__main__": 9,
    "proxy": 0,  # the package itself (its __init__)
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PROXY.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The `proxy` modules `path` imports (`from proxy.http import streams` counts as
    proxy.http.streams; an imported name that is not a module counts as its module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("proxy"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("proxy"):
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return found


def unit(module: str) -> str:
    """The layer unit of a module: its package under proxy/, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def test_every_unit_has_a_layer() -> None:
    assert {unit(name) for name in modules()} <= set(LAYERS)


def test_imports_run_one_way() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if unit(target) != unit(name)
        and LAYERS[unit(target)] >= LAYERS[unit(name)]
        and unit(target) != "proxy"
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    edges = graph()
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append(path[path.index(name) :] + [name])
            return
        if name in done:
            return
        for target in sorted(edges.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
    assert cycles == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_400_lines(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


def test_the_checks_see_what_they_claim() -> None:
    """The graph is not empty and finds a known edge, so the tests above cannot pass vacuously."""
    edges = graph()
    assert len(edges) > 30
    assert "proxy.dataplane.forward" in edges["proxy.dataplane.listener"]
    assert "proxy.http.streams" in edges["proxy.dataplane.forward"]
