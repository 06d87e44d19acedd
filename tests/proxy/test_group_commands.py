"""proxy.group_commands: `flip --group`, `rollback --group`, `--user` and who else a command
records, `validate` of groups, and the groups under `status`; as real processes (and one real
etcd for `--store`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from proxy.control.admin import make_admin_app
from proxy.routing.store import RouteStore, parse_store_url
from tests.support import free_port
from tests.support.control import GROUP_ROUTES, make_state, write

LOGIN = ("LOGNAME", "USER", "LNAME", "USERNAME", "STRANGLER_USER", "STRANGLER_STORE")
FLIPPED = (
    GROUP_ROUTES.replace("bookings: legacy ", "bookings: drf ")
    .replace("customers: 'legacy'", "customers: 'drf'")
    .replace("    backend: legacy ", "    backend: drf ")
)


def strangler(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m proxy ARGS` with no login name in its environment but `env`'s."""
    clean = {key: value for key, value in os.environ.items() if key not in LOGIN}
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def result(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def audit(directory: Path) -> list[dict[str, Any]]:
    lines = (directory / "routes.audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_flip_and_rollback_a_group(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.yaml", GROUP_ROUTES)
    done = strangler("flip", "--group", "reservations", "drf", "--user", "carol", "--reason",
                     "green", cwd=tmp_path, STRANGLER_USER="dave")  # fmt: skip
    assert result(done) == (
        0,
        "group reservations (flip):\n  bookings: legacy -> drf\n  customers: legacy -> drf\n"
        "  payments: legacy -> drf\n",
        "",
    )
    assert routes.read_text() == FLIPPED
    done = strangler("rollback", "customers", cwd=tmp_path, STRANGLER_USER="dave")
    assert result(done) == (0, "customers: drf -> legacy (rollback)\n", "")
    done = strangler("rollback", "--group", "reservations", cwd=tmp_path, LOGNAME="erin")
    assert result(done) == (
        0,
        "group reservations (rollback):\n  bookings: drf -> legacy\n  payments: drf -> legacy\n"
        "  customers: kept where it is\n",
        "",
    )
    assert routes.read_text() == GROUP_ROUTES
    assert [(e["user"], e["action"], e.get("group"), e["resource"]) for e in audit(tmp_path)] == [
        ("carol", "flip", "reservations", ""),  # --user wins over STRANGLER_USER
        ("dave", "rollback", None, "customers"),  # STRANGLER_USER
        ("erin", "rollback", "reservations", ""),  # the login name (getpass)
    ]
    assert audit(tmp_path)[0]["reason"] == "green"


def test_flip_a_group_already_there(tmp_path: Path) -> None:
    write(tmp_path / "routes.yaml", GROUP_ROUTES.replace("departures: legacy", "departures: drf"))
    assert result(strangler("flip", "--group", "catalogue", "drf", cwd=tmp_path)) == (
        0, "group catalogue (flip):\n  tours: already on drf\n  departures: already on drf\n"
           "  nothing changed\n", ""
    )  # fmt: skip
    assert not (tmp_path / "routes.audit.jsonl").exists()


def test_group_errors(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.yaml", GROUP_ROUTES)
    assert result(strangler("flip", "--group", "nope", "drf", cwd=tmp_path)) == (
        1, "", "strangler flip: unknown group 'nope' (groups: catalogue, reservations)\n"
    )  # fmt: skip
    assert result(strangler("rollback", "--group", "bookings", cwd=tmp_path)) == (
        1, "", "strangler rollback: unknown group 'bookings' (groups: catalogue, reservations)\n"
    )  # fmt: skip
    assert routes.read_text() == GROUP_ROUTES


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "routes.yaml", GROUP_ROUTES)
    cases = [
        (("flip", "--group", "reservations"), "the following arguments are required: backend"),
        (("flip", "--group", "reservations", "bookings", "drf"),
         "with --group GROUP, give only BACKEND"),
        (("flip",), "the following arguments are required: resource, backend"),
        (("rollback",), "the following arguments are required: resource (or --group)"),
        (("rollback", "bookings", "--group", "reservations"),
         "give RESOURCE or --group GROUP, not both"),
    ]  # fmt: skip
    for args, message in cases:
        code, out, err = result(strangler(*args, cwd=tmp_path))
        assert (code, out) == (2, "")
        assert err.startswith(f"usage: strangler {args[0]} ")
        assert err.endswith(f"strangler {args[0]}: error: {message}\n")
    assert not (tmp_path / "routes.audit.jsonl").exists()


def test_login_name_from_the_password_database(tmp_path: Path) -> None:
    """No login name in the environment: getpass asks the password database (this uid's)."""
    import pwd

    write(tmp_path / "routes.yaml", GROUP_ROUTES)
    assert strangler("flip", "tours", "legacy", cwd=tmp_path).returncode == 0
    assert audit(tmp_path)[0]["user"] == pwd.getpwuid(os.getuid()).pw_name


def test_validate_rejects_bad_groups(tmp_path: Path) -> None:
    text = GROUP_ROUTES.replace("[tours, departures]", "[tours, bookings, nope]")
    write(tmp_path / "routes.yaml", text.replace("  catalogue:", "  tours:"))
    assert result(strangler("validate", cwd=tmp_path)) == (
        1,
        "",
        "routes.yaml:19: group name 'tours' is also a resource's name "
        "(group and resource names must differ)\n",
    )
    write(tmp_path / "routes.yaml", text)
    assert result(strangler("validate", cwd=tmp_path)) == (
        1,
        "",
        "routes.yaml:19: resource 'bookings' is in groups 'reservations' and 'catalogue' "
        "(a resource is in one group at most)\n"
        "routes.yaml:19: group 'catalogue': unknown resource 'nope' (not under resources:)\n",
    )


def test_a_bad_token_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    write(tmp_path / "routes.yaml", GROUP_ROUTES)
    done = strangler("validate", cwd=tmp_path, STRANGLER_ADMIN_TOKENS="alice:s3cret,s3cret2")
    assert result(done) == (
        1,
        "",
        "strangler validate: STRANGLER_ADMIN_TOKENS: expected name:token\n",
    )


def test_flip_and_rollback_a_group_through_the_store(etcd_url: str, tmp_path: Path) -> None:
    write(tmp_path / "seed.yaml", GROUP_ROUTES)
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    push = ("store", "push", "seed.yaml", "--store", etcd_url, "--force", "--user", "ops")
    assert strangler(*push, cwd=tmp_path, **state).returncode == 0
    done = strangler("flip", "--group", "reservations", "drf", "--store", etcd_url, cwd=tmp_path,
                     STRANGLER_USER="dave", **state)  # fmt: skip
    text, entries = stored(etcd_url)
    revision = entries[-1]["revision"]
    assert result(done) == (
        0,
        f"group reservations (flip) (revision {revision}):\n  bookings: legacy -> drf\n"
        "  customers: legacy -> drf\n  payments: legacy -> drf\n",
        "",
    )
    assert text == FLIPPED
    done = strangler("rollback", "--group", "reservations", cwd=tmp_path, STRANGLER_USER="erin",
                     STRANGLER_STORE=etcd_url, **state)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text, entries = stored(etcd_url)
    assert text == GROUP_ROUTES
    assert [(e["user"], e["action"], e["group"] if "group" in e else "") for e in entries] == [
        ("ops", "push", ""), ("dave", "flip", "reservations"), ("erin", "rollback", "reservations")
    ]  # fmt: skip


def stored(url: str) -> tuple[str | None, list[dict[str, Any]]]:
    async def read() -> tuple[str | None, list[dict[str, Any]]]:
        async with RouteStore(parse_store_url(url)) as store:
            return (await store.read()).text, await store.audit()

    return asyncio.run(read())


async def test_status_lists_the_groups(tmp_path: Path) -> None:
    state = make_state(write(tmp_path / "routes.yaml", GROUP_ROUTES))
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
    assert out.decode().splitlines()[-2:] == [
        "group reservations: bookings, customers, payments",
        "group catalogue: tours, departures",
    ]
