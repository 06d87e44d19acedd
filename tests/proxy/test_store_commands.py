"""proxy.store_commands: `strangler store pull|push` and `flip`/`rollback --store`, as real
processes against a real etcd."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from proxy.routing.edit import set_backend
from proxy.routing.store import RouteStore, TableText, parse_store_url
from tests.support.control import ROUTES, write
from tests.support.etcd import EtcdServer


def strangler(
    *args: str, cwd: Path, store: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "USER": "ana", "LOGNAME": "ana", "XDG_STATE_HOME": str(cwd / "state")}
    env.pop("STRANGLER_STORE", None)
    if store is not None:
        env["STRANGLER_STORE"] = store
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args], cwd=cwd, env=env, capture_output=True, timeout=60
    )


def result(done: subprocess.CompletedProcess[bytes]) -> tuple[int, str, str]:
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def stored(url: str) -> tuple[TableText, list[dict[str, Any]]]:
    async def read() -> tuple[TableText, list[dict[str, Any]]]:
        async with RouteStore(parse_store_url(url)) as store:
            return await store.read(), await store.audit()

    return asyncio.run(read())


def seeded(url: str, directory: Path, text: str = ROUTES) -> int:
    """The store holding `text`, pushed by the CLI; its revision."""
    write(directory / "seed.yaml", text)
    done = strangler("store", "push", "seed.yaml", "--store", url, "--force", cwd=directory)
    assert done.returncode == 0, done.stderr
    return stored(url)[0].revision


def test_flip_and_rollback_through_the_store(etcd_url: str, tmp_path: Path) -> None:
    seeded(etcd_url, tmp_path)
    done = strangler("flip", "bookings", "drf", "--store", etcd_url, "--reason", "go", cwd=tmp_path)
    table, audit = stored(etcd_url)
    assert result(done) == (0, f"bookings: legacy -> drf (revision {table.revision})\n", "")
    assert table.text == ROUTES.replace("bookings: legacy   ", "bookings: drf   ")
    assert {k: audit[-1][k] for k in ("user", "resource", "from", "to", "reason", "action")} == {
        "user": "ana", "resource": "bookings", "from": "legacy", "to": "drf", "reason": "go",
        "action": "flip",
    }  # fmt: skip
    assert audit[-1]["revision"] == table.revision
    assert result(strangler("flip", "bookings", "drf", cwd=tmp_path, store=etcd_url)) == (
        0, "bookings: already on drf, nothing changed\n", ""
    )  # fmt: skip
    done = strangler("rollback", "bookings", cwd=tmp_path, store=etcd_url)  # STRANGLER_STORE
    table, audit = stored(etcd_url)
    assert result(done) == (
        0,
        f"bookings: drf -> legacy (rollback) (revision {table.revision})\n",
        "",
    )
    assert table.text == ROUTES
    assert [e["action"] for e in audit] == ["push", "flip", "rollback"]
    assert not (tmp_path / "routes.audit.jsonl").exists()


def test_flip_errors_through_the_store(etcd_url: str, tmp_path: Path) -> None:
    assert result(strangler("flip", "bookings", "drf", "--store", etcd_url, cwd=tmp_path)) == (
        1, "", f"strangler flip: {parse_store_url(etcd_url).prefix}/routes: the store holds no "
        "table yet: `strangler store push FILE` one first\n",
    )  # fmt: skip
    revision = seeded(etcd_url, tmp_path)
    assert result(strangler("flip", "bookings", "nope", "--store", etcd_url, cwd=tmp_path)) == (
        1, "", "strangler flip: unknown backend 'nope' (backends: drf, legacy)\n"
    )  # fmt: skip
    assert result(strangler("flip", "bookings", "drf", "--store", "etcd://h/p", cwd=tmp_path)) == (
        2, "", "strangler flip: store URL 'etcd://h/p': 'h' is not HOST:PORT "
        "(etcd://HOST:PORT[,HOST:PORT...]/PREFIX)\n",
    )  # fmt: skip
    assert stored(etcd_url)[0].revision == revision


def test_two_clis_flip_different_resources_concurrently(etcd_url: str, tmp_path: Path) -> None:
    seeded(etcd_url, tmp_path)
    plans = {
        "bookings": ["drf", "legacy"] * 10,  # listed: flipped in place
        "payments": ["drf", "legacy"] * 9 + ["drf", "drf2"],  # not listed: added, then flipped
    }
    text = ROUTES.replace("  drf:\n", "  drf2:\n    url: http://127.0.0.1:8001\n  drf:\n")
    seeded(etcd_url, tmp_path, text)
    failures: list[str] = []

    def flips(resource: str) -> None:
        for backend in plans[resource]:
            done = strangler("flip", resource, backend, "--store", etcd_url, cwd=tmp_path)
            if done.returncode != 0:
                failures.append(done.stderr.decode())

    threads = [threading.Thread(target=flips, args=(resource,)) for resource in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    table, audit = stored(etcd_url)
    flipped = [entry for entry in audit if entry["action"] == "flip"]
    assert len(flipped) == 40
    for resource, backends in plans.items():
        assert [e["to"] for e in flipped if e["resource"] == resource] == backends
    expected = set_backend(set_backend(text, "bookings", "legacy"), "payments", "drf2")
    assert table.text == expected
    assert [e["revision"] for e in audit] == sorted({e["revision"] for e in audit})


def test_push_an_invalid_file_writes_nothing(etcd_url: str, tmp_path: Path) -> None:
    revision = seeded(etcd_url, tmp_path)
    write(tmp_path / "bad.yaml", ROUTES.replace("version: 1", "version: 3").replace(
        "tours: drf", "tours: drff"))  # fmt: skip
    done = strangler("store", "push", "bad.yaml", "--store", etcd_url, "--force", cwd=tmp_path)
    assert result(done) == (
        1,
        "",
        "bad.yaml:2: version must be 1, got 3\nbad.yaml:17: unknown backend 'drff' for resource "
        "'tours'\n",
    )
    table, audit = stored(etcd_url)
    assert (table.revision, len(audit)) == (revision, 1)


def test_push_refused_when_the_store_changed_since_the_pull(etcd_url: str, tmp_path: Path) -> None:
    seeded(etcd_url, tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()  # its own state directory: another engineer
    write(mine / "edited.yaml", ROUTES.replace("tours: drf", "tours: legacy"))
    assert result(strangler("store", "push", "edited.yaml", "--store", etcd_url, cwd=mine)) == (
        1, "", "strangler store push: refused: no base to check against: `strangler store pull` "
        "first, or give --expect-revision N (or --force)\n",
    )  # fmt: skip
    pulled = strangler("store", "pull", "--store", etcd_url, cwd=mine)
    base = stored(etcd_url)[0].revision
    assert result(pulled) == (0, ROUTES, f"strangler store pull: revision {base}\n")
    assert strangler("flip", "bookings", "drf", "--store", etcd_url, cwd=tmp_path).returncode == 0
    after_flip = stored(etcd_url)[0]
    for extra in ([], ["--expect-revision", str(base)]):
        done = strangler("store", "push", "edited.yaml", "--store", etcd_url, *extra, cwd=mine)
        assert done.returncode == 1
        assert done.stderr.decode().startswith("strangler store push: refused: the table changed")
    assert stored(etcd_url)[0] == after_flip
    done = strangler("store", "push", "edited.yaml", "--store", etcd_url, "--force", cwd=mine)
    table, audit = stored(etcd_url)
    assert result(done) == (0, f"pushed edited.yaml (revision {table.revision})\n", "")
    assert table.text == (mine / "edited.yaml").read_text()
    assert [e["action"] for e in audit] == ["push", "flip", "push"]


def test_push_after_a_pull_and_a_flip_undone(etcd_url: str, tmp_path: Path) -> None:
    seeded(etcd_url, tmp_path)
    assert strangler("store", "pull", "--store", etcd_url, cwd=tmp_path).returncode == 0
    for backend in ("drf", "legacy"):  # the text is back to what was pulled: nothing to lose
        assert (
            strangler("flip", "bookings", backend, "--store", etcd_url, cwd=tmp_path).returncode
            == 0
        )
    write(tmp_path / "edited.yaml", ROUTES.replace("tours: drf", "tours: legacy"))
    done = strangler("store", "push", "edited.yaml", "--store", etcd_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stored(etcd_url)[0].text == (tmp_path / "edited.yaml").read_text()


@pytest.mark.parametrize(
    "text",
    [
        ROUTES.replace("\n", "\r\n"),
        "# café ☕\tand a tab\nversion: 1\nbackends: {a: {url: 'http://h:1'}}\ndefault: a",
    ],
    ids=["crlf", "unicode-no-final-newline"],
)
def test_pull_push_round_trip_keeps_every_byte(etcd_url: str, tmp_path: Path, text: str) -> None:
    (tmp_path / "seed.yaml").write_bytes(text.encode())
    done = strangler("store", "push", "seed.yaml", "--store", etcd_url, "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pulled = strangler("store", "pull", "--store", etcd_url, cwd=tmp_path)
    assert pulled.stdout == text.encode()
    (tmp_path / "routes.yaml").write_bytes(pulled.stdout)
    done = strangler("store", "push", "routes.yaml", "--store", etcd_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert strangler("store", "pull", "--store", etcd_url, cwd=tmp_path).stdout == text.encode()


def test_writes_with_etcd_down_fail_clearly(etcd: EtcdServer, tmp_path: Path) -> None:
    seeded(etcd.url, tmp_path)
    assert strangler("store", "pull", "--store", etcd.url, cwd=tmp_path).returncode == 0
    before = stored(etcd.url)
    write(tmp_path / "edited.yaml", ROUTES.replace("tours: drf", "tours: legacy"))
    etcd.kill()
    unreachable = f"the store is unreachable: etcd unreachable: {etcd.endpoint}: cannot connect"
    for command in (
        ["flip", "bookings", "drf"],
        ["rollback", "bookings"],
        ["store", "push", "edited.yaml"],
        ["store", "pull"],
    ):
        code, out, err = result(strangler(*command, "--store", etcd.url, cwd=tmp_path))
        assert (code, out) == (1, "")
        assert err.startswith(f"strangler {' '.join(command[:2 if command[0] == 'store' else 1])}: "
                              f"{unreachable}") and err.count("\n") == 1, err  # fmt: skip
    etcd.restart()
    assert stored(etcd.url) == before
