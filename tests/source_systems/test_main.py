"""The process: command line, startup line, clean stop, data across a restart."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from source_systems.__main__ import parse_args
from stack.runner import Stack
from stack.services import source_system
from tests.support import ROOT, free_config


def test_defaults_come_from_the_environment() -> None:
    args = parse_args(["crm"], {"STRANGLER_DATA_DIR": "/srv/data", "CRM_PORT": "6102"})
    assert (args.name, args.host, args.port, args.db) == (
        "crm",
        "127.0.0.1",
        6102,
        Path("/srv/data/crm.sqlite3"),
    )
    args = parse_args(["operations"], {})
    assert (args.port, args.db) == (5103, Path("var/operations.sqlite3"))


def test_flags_win_over_the_environment() -> None:
    argv = ["reservations", "--host", "0.0.0.0", "--port", "7000", "--db", "x/r.db"]
    args = parse_args(argv, {"RESERVATIONS_PORT": "1"})
    assert (args.host, args.port, args.db) == ("0.0.0.0", 7000, Path("x/r.db"))


def test_unknown_system_is_refused() -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(["billing"], {})
    assert caught.value.code == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_data_survives_a_restart_and_stops_are_clean(tmp_path: Path, sig: int) -> None:
    config = free_config(tmp_path / "data")
    url = f"{config.url('crm')}/customers"
    with Stack(cwd=ROOT, log_dir=tmp_path / "logs") as stack:
        stack.start(source_system(config, "crm"))
        created = requests.post(url, json={"loyalty_tier": "gold"}, timeout=5).json()
        patched = requests.patch(f"{url}/1", json={"agent_notes": "kept"}, timeout=5).json()
        stack.signal("crm", sig)
        assert stack.procs["crm"].wait(10) == 0
        stack.restart("crm")
        assert requests.get(f"{url}/{created['id']}", timeout=5).json() == created
        assert requests.get(f"{url}/1", timeout=5).json() == patched
        assert requests.get(f"{url}?limit=0", timeout=5).json() == {"count": 101, "items": []}
        assert stack.stop("crm") == 0
    log = (tmp_path / "logs" / "crm.log").read_text()
    assert created == {"id": 101, "loyalty_tier": "gold"}
    assert patched["agent_notes"] == "kept" and patched["loyalty_tier"]
    assert log.count("crm listening on http://") == 2
    assert "Traceback" not in log
