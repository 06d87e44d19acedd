"""proxy.observe.sharing and what it feeds: /-/debt and /-/diffs over several workers.

Unit tables for the snapshot files (the merges they feed are tested with their modules:
tests/proxy/observe/test_debt.py, tests/proxy/control/test_diffs.py), then
`python -m proxy serve --workers 2` in front of real loopback upstreams: whichever worker
answers an admin request, it reports the fallbacks and mismatches of both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from proxy.observe.sharing import SHARE_SECONDS, others, publish, share
from proxy.settings import shared_directory
from tests.support.raw_http import (
    RawRequest,
    canned,
    exchange,
    respond,
    worker_pids,
    workers_listening,
)


def test_shared_directory_only_with_several_workers(tmp_path: Path) -> None:
    assert shared_directory({}) is None
    assert shared_directory({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) == tmp_path


def test_others_are_every_snapshot_but_this_workers(tmp_path: Path, caplog) -> None:
    publish(tmp_path, "debt", [{"n": 1}], pid=101)
    publish(tmp_path, "debt", [{"n": 2}], pid=102)
    publish(tmp_path, "debt", [{"n": 1, "again": True}], pid=101)  # replaced whole
    publish(tmp_path, "mismatches", {"x": []}, pid=103)
    (tmp_path / "debt-104.json").write_text('[{"n": ')  # never written by publish: skipped
    with caplog.at_level(logging.WARNING, logger="proxy.observe.sharing"):
        assert others(tmp_path, "debt", pid=102) == [[{"n": 1, "again": True}]]
    assert "debt-104.json" in caplog.text
    assert others(tmp_path, "mismatches", pid=999) == [{"x": []}]
    assert others(None, "debt") == []
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "debt-101.json", "debt-102.json", "debt-104.json", "mismatches-103.json",
    ]  # fmt: skip


def test_share_survives_a_vanished_directory(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="proxy.observe.sharing"):
        share(tmp_path / "gone", {"debt": lambda: []})
    assert "could not share debt with the other workers" in caplog.text


# -- two real workers --------------------------------------------------------------------------

FALLBACKS = 40
SHADOWED = 20
ROUTES = """version: 1
backends:
  legacy: {{url: "{legacy}"}}
  drf: {{url: "{drf}"}}
default: legacy
resources:
  bookings:
    backend: drf
    fallback: {{backend: legacy, on: [404]}}
  customers:
    backend: legacy
    shadow: {{backend: drf, percent: 100}}
"""
JSON = (b"Content-Type: application/json",)


def drf_answer(request: RawRequest) -> bytes:
    if request.request_line.split(b" ")[1].startswith(b"/bookings"):
        return respond(b"404 NOT FOUND", b'{"http_status_code": 404}', JSON)
    return respond(b"200 OK", b'{"name": "drf"}', JSON)


def shared_directory_of(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [item.split(b"=", 1)[1] for item in environ if item.startswith(b"PROMETHEUS_MULTI")]
    return Path(found[0].decode())


async def admin_json(port: int, target: str) -> object:
    request = f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
    answer = await exchange(port, request)
    assert answer.status == 200
    return json.loads(answer.body)


async def test_every_worker_reports_the_debt_and_mismatches_of_all(
    upstream_factory, proxy_process, tmp_path: Path
) -> None:
    drf = await upstream_factory(canned(drf_answer))
    legacy = await upstream_factory(canned(respond(b"200 OK", b'{"name": "legacy"}', JSON)))
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, drf=drf.url))
    proxy = proxy_process(routes, "--workers", "2", env={"STRANGLER_ACCESS_LOG": "0"})
    await workers_listening(proxy.proc.pid, proxy.port, 2)  # else one may get every connection
    requests = [f"GET /bookings/{n} HTTP/1.1\r\nHost: a\r\n\r\n" for n in range(FALLBACKS)]
    requests += [f"GET /customers/{n} HTTP/1.1\r\nHost: a\r\n\r\n" for n in range(SHADOWED)]
    answers = await asyncio.gather(*(exchange(proxy.port, r.encode()) for r in requests))
    assert {(a.status, a.body) for a in answers} == {(200, b'{"name": "legacy"}')}

    for _ in range(100):  # shadow copies are compared after the answers: wait for the last
        summary = await admin_json(proxy.admin_port, "/-/diffs")
        if summary["resources"]["customers"]["mismatch"] == SHADOWED:  # type: ignore[index]
            break
        await asyncio.sleep(0.1)
    # Each worker shares what it kept within SHARE_SECONDS (0.5 s of slack for a busy machine).
    await asyncio.sleep(SHARE_SECONDS * 1.5)
    for _ in range(10):  # every read, whichever worker answers it, says the same
        listed = await admin_json(proxy.admin_port, "/-/debt")
        assert isinstance(listed, list) and len(listed) == 1
        entry = listed[0]
        assert (entry["shape"], entry["count"]) == ("GET /bookings/{id}", FALLBACKS)
        assert (entry["codes"], entry["backends"]) == (
            {"404": FALLBACKS},
            {"drf -> legacy": FALLBACKS},
        )
        kept = await admin_json(proxy.admin_port, "/-/diffs?resource=customers")
        assert isinstance(kept, dict)
        paths = sorted(m["path"] for m in kept["mismatches"])
        assert paths == sorted(f"/customers/{n}" for n in range(SHADOWED))
        summary = await admin_json(proxy.admin_port, "/-/diffs")
        assert summary["resources"]["customers"]["kept"] == SHADOWED  # type: ignore[index]

    # The load really was split: each worker's own snapshot holds part of it.
    pids = worker_pids(proxy.proc.pid)
    directory = shared_directory_of(pids[0])
    counts = [json.loads((directory / f"debt-{pid}.json").read_text()) for pid in pids]
    per_worker = [sum(entry["count"] for entry in snapshot) for snapshot in counts]
    assert sum(per_worker) == FALLBACKS and min(per_worker) > 0, per_worker
    proxy.terminate()
    assert await asyncio.to_thread(proxy.proc.wait, 15) == 0
