"""proxy.control.diffs: the shadow report, its figures from the registry, the merge of the
workers' kept mismatches; GET /-/diffs, `strangler diffs` and `strangler status` over real
shadow traffic."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from proxy.control.admin import make_admin_app
from proxy.control.diffs import figures, merge_mismatches
from proxy.observe.metrics import Metrics
from tests.support import ROOT, free_port
from tests.support.shadow_rig import (
    IGNORE,
    LIVE_BODY,
    Rig,
    Start,
    altered,
    fixed,
    json_backend,
    rigs,
    routes,
)


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    async with rigs() as start:
        yield start


# -- /-/diffs, strangler diffs, strangler status -----------------------------------------------


async def mismatching_rig(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> Rig:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(altered))
    rig = await rig_factory(routes(live.url, shadow.url, ignore=IGNORE))
    for path in ("/things/1", "/things/2", "/things/1"):
        await rig.get(path)
    await rig.settled()
    return rig


async def test_diffs_endpoint(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    rig = await mismatching_rig(upstream_factory, rig_factory)
    client = TestClient(TestServer(make_admin_app(rig.state)))
    await client.start_server()
    try:
        body = await (await client.get("/-/diffs?resource=things")).json()
        summary = await (await client.get("/-/diffs")).json()
        unknown = await client.get("/-/diffs?resource=nope")
        unknown_body = await unknown.json()
        bad_limit = await client.get("/-/diffs?resource=things&limit=0")
        plain = await (await client.get("/-/diffs?resource=plain")).json()
    finally:
        await client.close()
    mismatches = body.pop("mismatches")
    assert body == {
        "resource": "things",
        "shadow": {
            "backend": "shadow",
            "percent": 100.0,
            "ignore": ["$.meta.generated_at", "$.results[*].href"],
            "learn_noise": 0.0,
            "noise_after": 3,
            "writes": "off",
        },
        # /things/1 (twice) differs only in ignored fields: noise, apart from the match rate
        "match": 0.0,
        "mismatch": 1.0,
        "noise": 2.0,
        "error": 0.0,
        "dropped": 0.0,
        "match_rate": 0.0,
        "classes": {"status": 0.0, "schema": 0.0, "value": 1.0, "header": 0.0, "noise": 2.0},
        "worst": "value",
        "noise_paths": {},
        "noise_rules": 'ignore: ["$.meta.generated_at", "$.results[*].href"]',
    }
    # the most severe class first, newest first within a class
    assert [(m["path"], m["class"]) for m in mismatches] == [
        ("/things/2", "value"),
        ("/things/1", "noise"),
        ("/things/1", "noise"),
    ]
    assert mismatches[1]["time"] >= mismatches[2]["time"]
    mismatch = mismatches[0]
    assert mismatch.pop("time").endswith("Z")
    noise = {"class": "noise", "kind": "changed"}
    assert mismatch == {
        "resource": "things",
        "method": "GET",
        "path": "/things/2",
        "request_id": "rid-/things/2",
        "backend": "live",
        "shadow_backend": "shadow",
        "live_status": 200,
        "shadow_status": 200,
        "class": "value",
        "dry_run": False,
        "differences": [
            {
                "field": "$.meta.generated_at",
                "live": "2026-11-28T10:00:00Z",
                "shadow": "2026-11-28T10:00:01Z",
                **noise,
            },
            {
                "field": "$.results[0].href",
                "live": "http://api/things/1",
                "shadow": "http://drf/things/1",
                **noise,
            },
            {
                "field": "$.results[1].href",
                "live": "http://api/things/2",
                "shadow": "http://drf/things/2",
                **noise,
            },
            {
                "field": "$.results[1].contact_email",
                "kind": "changed",
                "class": "value",
                "live": "b@example.com",
                "shadow": "B@example.com",
            },
            {
                "field": "$.results[2]",
                "kind": "added",
                "class": "value",
                "live": None,
                "shadow": {"id": 3},
            },
        ],
        "request": {"headers": [["Host", "api.example"]], "body": ""},
        "live": {"content_type": "application/json", "body": json.dumps(LIVE_BODY)},
    }
    summary_keys = ("noise_paths", "noise_rules")
    assert summary == {
        "resources": {
            "things": {
                **{k: v for k, v in body.items() if k != "resource" and k not in summary_keys},
                "kept": 3,
            },
        }
    }
    assert unknown.status == 404
    assert unknown_body["message"] == "Not found: no resource 'nope'."
    assert bad_limit.status == 400
    assert plain["shadow"] is None and plain["mismatches"] == []


async def test_secret_query_parameters_are_kept_redacted(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    live = await upstream_factory(json_backend(fixed(LIVE_BODY)))
    shadow = await upstream_factory(json_backend(altered))
    rig = await rig_factory(routes(live.url, shadow.url, ignore=IGNORE))
    await rig.get("/things/1?expand=1&access_token=s3cret&API_KEY=k%20y&password")
    await rig.settled()
    client = TestClient(TestServer(make_admin_app(rig.state)))
    await client.start_server()
    try:
        body = await (await client.get("/-/diffs?resource=things")).json()
    finally:
        await client.close()
    [kept] = body["mismatches"]  # noise: only ignored fields differ
    # a name without a value is left as it came; the request's headers carry no secret here
    assert kept["path"] == "/things/1?expand=1&access_token=<redacted>&API_KEY=<redacted>&password"
    assert kept["request"]["headers"] == [["Host", "api.example"]]


async def run_cli(*args: str) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_strangler_diffs_and_status(
    upstream_factory: Start, rig_factory: Callable[..., Awaitable[Rig]]
) -> None:
    rig = await mismatching_rig(upstream_factory, rig_factory)
    server = TestServer(make_admin_app(rig.state), host="127.0.0.1", port=free_port())
    await server.start_server()
    admin = str(server.make_url("")).rstrip("/")
    try:
        diffs = await run_cli("diffs", "things", "--admin", admin)
        status = await run_cli("status", "--admin", admin)
        unknown = await run_cli("diffs", "nope", "--admin", admin, "--limit", "5")
    finally:
        await server.close()
    code, out, err = diffs
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:5] == [
        "things: shadowed to shadow at 100%",
        "compared: 0 match, 1 mismatch, 2 noise, 0 error, 0 dropped; match rate 0.0%",
        "by class: 1 value, 2 noise",
        "",
        "value (1)",
    ]
    assert lines[5].endswith("Z  GET /things/2  request rid-/things/2")
    assert lines[6:12] == [
        "    live live 200, shadow shadow 200",
        '    $.meta.generated_at: live="2026-11-28T10:00:00Z" shadow="2026-11-28T10:00:01Z"'
        "  (noise)",
        '    $.results[0].href: live="http://api/things/1" shadow="http://drf/things/1"  (noise)',
        '    $.results[1].href: live="http://api/things/2" shadow="http://drf/things/2"  (noise)',
        '    $.results[1].contact_email: live="b@example.com" shadow="B@example.com"',
        '    $.results[2]: added, shadow={"id": 3}',
    ]
    assert lines[12:14] == ["", "noise (2)"]
    assert [line for line in lines[14:] if "GET" in line] == [
        line for line in lines[14:] if line.endswith("GET /things/1  request rid-/things/1")
    ]
    assert len(lines) == 24  # the two noise mismatches, five lines each
    code, out, err = status
    assert (code, err) == (0, "")
    assert out.splitlines()[4:] == [
        "progress:    1 legacy, 1 shadow; last 5m: no requests",
        "RESOURCE  STAGE   BACKEND  METHODS  REQ/S  ERRORS  SHADOW",
        "things    shadow  live     -        0.0    -       0.0% of 1, 2 noise, worst value",
        "plain     legacy  live     -        0.0    -       -",
        "(other)   legacy  live     -        0.0    -       -",
    ]
    assert unknown == (1, "", "strangler diffs: Not found: no resource 'nope'.\n")


def test_merge_mismatches_keeps_the_newest_per_resource_and_class() -> None:
    def mismatch(second: int, kind: str = "value") -> dict:
        time = f"2026-11-28T10:00:{second:02d}.000Z"
        return {"time": time, "path": f"/things/{second}", "class": kind}

    one = {"things": [mismatch(9), mismatch(5), mismatch(1)], "other": [mismatch(3)]}
    two = {"things": [mismatch(7), mismatch(2)]}
    merged = merge_mismatches([one, two], keep=4)
    assert merged == {
        "things": [mismatch(9), mismatch(7), mismatch(5), mismatch(2)],
        "other": [mismatch(3)],
    }
    assert len(one["things"]) == 3
    # a flood of newer value mismatches never pushes an older status one out
    three = {"things": [mismatch(50 - n) for n in range(6)] + [mismatch(1, "status")]}
    assert [m["class"] for m in merge_mismatches([three], keep=4)["things"]] == [
        *["value"] * 4,
        "status",
    ]


def test_figures_sum_the_counters() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for result in ("match", "match", "match", "error"):
        metrics.shadow_result("a", result)
    metrics.shadow_drop("a")
    metrics.shadow_drop("b")
    found = figures(registry)
    metrics.shadow_result("a", "noise", "noise")
    found = figures(registry)
    assert found["a"].to_json() == {
        "match": 3.0,
        "mismatch": 0.0,
        "noise": 1.0,
        "error": 1.0,
        "dropped": 1.0,
        "match_rate": 0.75,  # noise is neither for nor against
        "classes": {"status": 0.0, "schema": 0.0, "value": 0.0, "header": 0.0, "noise": 1.0},
        "worst": "noise",
    }
    assert found["b"].match_rate is None
