"""proxy.diffs_commands: `strangler diffs` as text (mismatches by class, --noise and its ignore
rule, which routes.yaml's parser takes), and the command as a real process against a loopback
server answering GET /-/diffs and GET /-/routes as the admin API does."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from proxy import diffs_commands
from proxy.diffs_commands import print_diffs, print_noise
from proxy.migration.shadow import KEEP
from proxy.routing.parser import parse_table
from tests.support import ROOT, serve_on_loopback
from tests.support.diffs_report import mismatch, report


def text_of(printer: Any, body: dict[str, Any]) -> list[str]:
    out = io.StringIO()
    printer(body, out)
    return out.getvalue().splitlines()


def test_mismatches_grouped_by_class_most_severe_first() -> None:
    assert text_of(print_diffs, report()) == [
        "bookings: shadowed to drf at 100%, writes dry-run",
        "compared: 98 match, 3 mismatch, 5 noise, 0 error, 0 dropped; match rate 98.0%",
        "by class: 2 status, 1 value, 5 noise",
        "",
        "status (2)",
        "  2026-11-28T10:00:00.123Z  POST /bookings/resource  request rid-10:00:00  dry-run write",
        "    live legacy 201, shadow drf 404",
        "    status: live=201 shadow=404",
        "    $.id: removed, live=52  (schema)",
        "  2026-11-28T09:30:00.000Z  POST /bookings/resource  request rid-09:30:00",
        "    live legacy 201, shadow drf 500",
        "",
        "value (1)",
        "  2026-11-28T09:00:00.000Z  GET /bookings/7?expand=1  request -",
        "    live legacy 200, shadow drf 200",
        "    $.total: live=1 shadow=2",
        "",
        "noise (1)",
        "  2026-11-28T10:05:00.000Z  GET /bookings/8  request rid-10:05:00",
        "    live legacy 200, shadow drf 200",
        '    $.meta.generated_at: live="a" shadow="b"',
    ]


def test_unclassified_mismatches_last_and_nothing_kept() -> None:
    old = report()
    old["mismatches"] = [
        {**mismatch("2026-11-28T08:00:00.000Z", "GET", "/bookings/1", "value", 200, 200),
         "class": None},
        mismatch("2026-11-28T07:00:00.000Z", "GET", "/bookings/2", "header", 200, 200),
    ]  # fmt: skip
    lines = text_of(print_diffs, old)
    assert [line for line in lines if line and not line.startswith(" ")][3:] == [
        "header (1)",
        "unclassified (1)",
    ]
    empty = {"resource": "plain", "shadow": None, "match": 0.0, "mismatch": 0.0, "error": 0.0,
             "dropped": 0.0, "match_rate": None, "mismatches": []}  # fmt: skip
    assert text_of(print_diffs, empty) == [
        "plain: not shadowed",
        "compared: 0 match, 0 mismatch, 0 noise, 0 error, 0 dropped; match rate -",
        "no mismatch kept",
    ]


def test_noise_paths_and_their_rule() -> None:
    body = report()
    body.pop("noise_rules", None)
    lines = text_of(print_noise, body)
    assert lines == [
        "bookings: noise learned on the primary alone (a path is noise once seen 3 times)",
        "  7  $.meta.generated_at  ignored already",
        "  4  $.results[*].token   noise",
        "  1  $.links.self         1 of 3",
        "to ignore it, under resources.bookings.shadow in routes.yaml:",
        'ignore: ["$.meta.generated_at", "$.results[*].token"]',
    ]
    table = parse_table(
        "version: 1\n"
        "backends: {legacy: {url: 'http://127.0.0.1:5000'}, drf: {url: 'http://127.0.0.1:8000'}}\n"
        "default: legacy\n"
        "resources:\n"
        "  bookings:\n"
        "    backend: legacy\n"
        "    shadow:\n"
        "      backend: drf\n"
        f"      {lines[-1]}\n",
        environ={},
    )
    shadow = table.routes["bookings"].shadow
    assert shadow is not None
    assert shadow.ignore == ("$.meta.generated_at", "$.results[*].token")


def test_noise_paths_covered_or_outside_the_subset() -> None:
    body = report()
    body["shadow"]["noise_after"] = 2
    body["noise_paths"] = {"$.a[*]": 3, "$.a[*].b": 5, '$["first name"]': 9, "$.c": 2}
    assert text_of(print_noise, body) == [
        "bookings: noise learned on the primary alone (a path is noise once seen 2 times)",
        '  9  $["first name"]  noise, not an ignore path',
        "  5  $.a[*].b         noise, covered by a shorter path",
        "  3  $.a[*]           noise",
        "  2  $.c              noise",
        "to ignore it, under resources.bookings.shadow in routes.yaml:",
        'ignore: ["$.meta.generated_at", "$.a[*]", "$.c"]',
    ]
    body["noise_rules"] = 'ignore: ["$.from.the.proxy"]'  # the admin API's own, when it sends one
    assert text_of(print_noise, body)[-1] == 'ignore: ["$.from.the.proxy"]'


def test_noise_nothing_to_add_or_nothing_learned() -> None:
    body = report()
    body["noise_paths"] = {"$.meta.generated_at": 7, "$.links.self": 1}
    assert text_of(print_noise, body)[-1] == (
        "nothing to add to ignore: no new path seen 3 times yet"
    )
    body["noise_paths"] = {}
    assert text_of(print_noise, body) == [
        "bookings: no noise learned yet (learning is on 5% of shadowed GETs)"
    ]
    body["shadow"]["learn_noise"] = 0.0
    assert text_of(print_noise, body) == [
        "bookings: no noise learned yet (learning is off: set shadow.learn_noise)"
    ]


def test_export_asks_for_everything_kept() -> None:
    assert diffs_commands.KEEP == KEEP


# -- the command, against a loopback admin API -------------------------------------------------


class Admin:
    """GET /-/diffs (the report for `bookings`, 404 for another resource) and GET /-/routes."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.queries: list[dict[str, str]] = []

    async def diffs(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        name = request.query["resource"]
        if name != "bookings":
            message = f"Not found: no resource '{name}'."
            return web.json_response({"message": message}, status=404)
        return web.json_response(self.body)

    async def routes(self, request: web.Request) -> web.Response:
        backends = {"legacy": {"url": "http://legacy.test:5000"}, "drf": {"url": "http://drf.test"}}
        return web.json_response({"backends": backends, "resources": {}})


@pytest.fixture
async def admin() -> AsyncIterator[tuple[Admin, str]]:
    fake = Admin(report())
    app = web.Application()
    app.router.add_get("/-/diffs", fake.diffs)
    app.router.add_get("/-/routes", fake.routes)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield fake, f"http://127.0.0.1:{await serve_on_loopback(runner)}"
    finally:
        await runner.cleanup()


async def strangler(*args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "proxy", *args],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


async def test_diffs_command(admin: tuple[Admin, str]) -> None:
    fake, url = admin
    code, out, err = await strangler("diffs", "bookings", "--admin", url)
    assert (code, err) == (0, "")
    assert out.splitlines() == text_of(print_diffs, report())
    code, out, err = await strangler("diffs", "bookings", "--admin", url + "/", "--noise")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == 'ignore: ["$.meta.generated_at", "$.results[*].token"]'
    code, out, err = await strangler("diffs", "nope", "--admin", url, "--limit", "5")
    assert (code, out, err) == (1, "", "strangler diffs: Not found: no resource 'nope'.\n")
    assert fake.queries == [
        {"resource": "bookings", "limit": "10"},
        {"resource": "bookings", "limit": "10"},
        {"resource": "nope", "limit": "5"},
    ]


async def test_export_command(admin: tuple[Admin, str]) -> None:
    fake, url = admin
    code, out, err = await strangler("diffs", "bookings", "--admin", url, "--export", "pytest")
    assert (code, err) == (0, "")
    compile(out, "test_captured_bookings.py", "exec")
    prose = " ".join(out[: out.index('"""', 3)].split())
    assert f"`strangler diffs bookings --export pytest` from the admin API at {url} on 20" in prose
    assert 'NEW_URL = os.environ.get("STRANGLER_NEW_URL", "http://drf.test")\n' in out
    assert "def test_post_bookings_resource() -> None:" in out
    assert fake.queries == [{"resource": "bookings", "limit": str(KEEP)}]

    fake.body["mismatches"] = [m for m in fake.body["mismatches"] if m["class"] == "noise"]
    code, out, err = await strangler("diffs", "bookings", "--admin", url, "--export", "pytest")
    assert (code, out) == (1, "")
    assert err == (
        "strangler diffs: bookings: no mismatch to export (1 kept: 1 noise, 0 without a "
        "replayable request)\n"
    )


async def test_export_usage_errors(admin: tuple[Admin, str]) -> None:
    _, url = admin
    code, out, err = await strangler("diffs", "bookings", "--admin", url, "--export", "junit")
    assert (code, out) == (2, "")
    assert err.endswith(
        "strangler diffs: error: argument --export: invalid choice: 'junit' "
        "(choose from 'pytest')\n"
    )
    code, out, err = await strangler("diffs", "bookings", "--noise", "--export", "pytest")
    assert (code, out) == (2, "")
    assert err.endswith(
        "strangler diffs: error: argument --export: not allowed with argument --noise\n"
    )
