"""stack.seed: an empty store gets routes.yaml; a store holding a table is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, free_port


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`strangler store` records pulls and pushes under XDG_STATE_HOME: not the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def seed(path: Path, store: str, wait: float = 5) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.seed", str(path), "--store", store, "--wait", str(wait)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def pull(store: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "store", "pull", "--store", store],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_an_empty_store_is_seeded_once_and_never_overwritten(etcd_url: str, tmp_path: Path) -> None:
    routes = (ROOT / "routes.yaml").read_text()
    first = seed(ROOT / "routes.yaml", etcd_url)
    assert first.returncode == 0, first.stderr
    assert pull(etcd_url) == routes

    other = tmp_path / "routes.yaml"
    other.write_text(routes.replace("bookings: legacy", "bookings: drf"))
    again = seed(other, etcd_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("seed: the store already holds a table (revision ")
    assert pull(etcd_url) == routes


def test_an_invalid_file_is_not_pushed(etcd_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "routes.yaml"
    broken.write_text("version: 1\nbackends: {}\ndefault: nowhere\n")
    result = seed(broken, etcd_url)
    assert result.returncode == 1
    assert "routes.yaml:" in result.stderr + result.stdout


def test_an_unreachable_store_fails_after_the_wait() -> None:
    result = seed(ROOT / "routes.yaml", f"etcd://127.0.0.1:{free_port()}/strangler", wait=0.5)
    assert result.returncode == 1
    assert result.stderr.startswith("seed: ")
