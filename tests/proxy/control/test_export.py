"""proxy.control.export: the pytest module `strangler diffs R --export pytest` writes. Its text
(names, dedup, placeholders, ruff-clean as generated), then the module itself run by pytest in a
subprocess against a real loopback server standing in for the new gateway."""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from proxy.control.export import NothingToExport, case_name, cases, pytest_module, unique
from proxy.dryrun import SHADOW_HEADER, SIGNATURE_HEADER, verify
from tests.support import ROOT, serve_on_loopback
from tests.support.diffs_report import GET_ANSWER, POST_ANSWER, POST_BODY, mismatch, report

KEY_VARIABLE = "STRANGLER_EXPORT_X_APPLICATION_KEY"


def module_text(data: dict[str, Any] | None = None, url: str = "http://127.0.0.1:8000") -> str:
    return pytest_module(
        report() if data is None else data,
        url,
        admin_url="http://127.0.0.1:8081",
        exported_at="2026-11-28T11:00:00Z",
    )


def function_names(text: str) -> list[str]:
    tree = ast.parse(text)
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def ruff(*paths: Path) -> tuple[int, str]:
    """`ruff check` then `ruff format --check` with the project's configuration."""
    ruff_bin = Path(sys.executable).parent / "ruff"
    config = ["--config", str(ROOT / "pyproject.toml")]
    outputs, code = [], 0
    for command in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run(
            [str(ruff_bin), *command, *config, *map(str, paths)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        outputs.append(done.stdout + done.stderr)
        code = code or done.returncode
    return code, "".join(outputs)


# -- the text ----------------------------------------------------------------------------------


def test_module_shape() -> None:
    text = module_text()
    assert function_names(text) == [
        "secret",
        "replay",
        "send",
        "test_post_bookings_resource",
        "test_get_bookings_id",
    ]
    assert text.startswith('"""Parity tests captured from the shadow report of `bookings`.\n')
    head = text[: text.index('"""', 3)]
    for words in (
        "`strangler diffs bookings --export pytest` from the admin API at http://127.0.0.1:8081",
        "on 2026-11-28T11:00:00Z",
        "    STRANGLER_NEW_URL=URL python -m pytest -q THIS_FILE",
        "- STRANGLER_NEW_URL: the new gateway's base URL (default http://127.0.0.1:8000, drf's URL",
        "- STRANGLER_EXPORT_X_APPLICATION_KEY: the X-Application-Key header, recorded as",
        "- STRANGLER_SHADOW_SECRET: when set, writes (POST, PUT, PATCH, DELETE) are sent as signed",
    ):
        assert words in head
    assert 'NEW_URL = os.environ.get("STRANGLER_NEW_URL", "http://127.0.0.1:8000")\n' in text
    assert 'IGNORE = Ignore.compile(["$.meta.generated_at"])\n' in text
    post = text[text.index("def test_post_bookings_resource") : text.index("def test_get_")]
    assert post == (
        "def test_post_bookings_resource() -> None:\n"
        '    """POST /bookings/resource: legacy 201, drf 404 (status, dry-run write).\n'
        "\n"
        "    Recorded at 2026-11-28T10:00:00.123Z, request rid-10:00:00.\n"
        '    """\n'
        "    replay(\n"
        '        "POST",\n'
        '        "/bookings/resource",\n'
        "        headers=[\n"
        '            ("Content-Type", "application/json"),\n'
        f'            ("X-Application-Key", secret("{KEY_VARIABLE}")),\n'
        "        ],\n"
        "        body=b'{\"tour_id\": 1}',\n"
        "        status=201,\n"
        '        content_type="application/json",\n'
        '        expected=b\'{"id": 52, "tour_id": 1}\',\n'
        "    )\n\n\n"
    )
    assert text.endswith(
        "        headers=[\n"
        '            ("Accept", "application/json"),\n'
        "        ],\n"
        '        body=b"",\n'
        "        status=200,\n"
        '        content_type="application/json",\n'
        '        expected=b\'{"id": 7, "total": 1, "meta": {"generated_at": '
        '"2026-11-28T09:00:00Z"}}\',\n'
        "    )\n"
    )
    assert '"<redacted>")' not in text and '"tour_id": 2' not in text and "/bookings/8" not in text


def test_newest_of_each_shape_without_noise_or_unreplayable() -> None:
    data = report()
    data["mismatches"] += [
        mismatch("2026-11-28T11:00:00.000Z", "GET", "/bookings/9?expand=0", "value", 200, 200),
        mismatch("2026-11-28T11:00:01.000Z", "PUT", "/bookings/9", "status", 200, 500,
                 request={"headers": [], "body": None}),  # over the cap: not replayable
        mismatch("2026-11-28T11:00:02.000Z", "DELETE", "/bookings/9", "status", 204, 500,
                 request=None),
        mismatch("2026-11-28T11:00:03.000Z", "GET", "/bookings/a-b", "value", 200, 200),
        mismatch("2026-11-28T11:00:04.000Z", "GET", "/bookings/a_b", "schema", 200, 200),
    ]  # fmt: skip
    chosen = cases(data)
    assert [(case.name, case.mismatch["path"]) for case in chosen] == [
        ("test_get_bookings_a_b", "/bookings/a_b"),
        ("test_get_bookings_a_b_2", "/bookings/a-b"),
        ("test_get_bookings_id", "/bookings/9?expand=0"),
        ("test_post_bookings_resource", "/bookings/resource"),
    ]
    assert function_names(module_text(data))[3:] == [case.name for case in chosen]


def test_case_name_and_unique() -> None:
    assert case_name("GET", "/bookings/{id}") == "test_get_bookings_id"
    assert (
        case_name("PATCH", "/tours/{id}/itineraries/{id}") == "test_patch_tours_id_itineraries_id"
    )
    assert case_name("GET", "/") == "test_get"
    assert case_name("GET", "/" + "x" * 200) == "test_get_" + "x" * 56
    assert case_name("GET", "/Ünïcode/é") == "test_get_n_code"
    assert unique("test_a", ["test_a", "test_a_2"]) == "test_a_3"
    assert unique("test_b", ["test_a"]) == "test_b"


def test_unrecorded_answer_and_binary_bodies() -> None:
    binary = bytes(range(256))
    data = report()
    data["mismatches"] = [
        mismatch("2026-11-28T10:00:00.000Z", "POST", "/bookings/raw", "value", 200, 200,
                 request={"headers": [], "body_base64": base64.b64encode(binary).decode()},
                 live={"content_type": "application/octet-stream", "body": None}),
        mismatch("2026-11-28T09:00:00.000Z", "GET", "/bookings/old", "value", 200, 200,
                 live=None),
    ]  # fmt: skip
    text = module_text(data)
    namespace: dict[str, Any] = {}
    exec(compile(text, "exported.py", "exec"), namespace)  # defines the tests, sends nothing
    post = text[text.index("def test_post_bookings_raw") : text.index("def test_get_")]
    body = post[post.index("body=") : post.index("status=")]
    assert eval(body.removeprefix("body=").rstrip().rstrip(",")) == binary
    assert 'content_type="application/octet-stream",\n        expected=None,\n' in post
    assert text.endswith("        content_type=None,\n        expected=None,\n    )\n")


def test_nothing_to_export() -> None:
    data = report()
    data["mismatches"] = [m for m in data["mismatches"] if m["class"] == "noise"] + [
        mismatch("2026-11-28T11:00:00.000Z", "GET", "/bookings/9", "value", 200, 200, request=None)
    ]
    with pytest.raises(NothingToExport) as raised:
        module_text(data)
    assert str(raised.value) == (
        "bookings: no mismatch to export (2 kept: 1 noise, 1 without a replayable request)"
    )


def hostile_report() -> dict[str, Any]:
    """Everything that makes laying out a module hard: long and odd literals, names, paths."""
    long_value = "Mozilla/5.0 (X11; Linux x86_64) " * 6 + "'\"\\\t\u00e9\u0101\U0001f600"
    data = report()
    data["resource"] = "a-very-long-resource-name-" * 4
    data["shadow"]["ignore"] = [f"$.generated[*].field_number_{n}" for n in range(8)]
    data["mismatches"] = [
        mismatch(
            f"2026-11-28T10:00:{n:02d}.000Z", method, path, "value", 200, 201,
            backend="legacy-" * 8, shadow_backend='drf "new" \\ stack',
            request={"headers": [["User-Agent", long_value], ["X-" + "Long-" * 14 + "Name",
                     "<redacted>"], ["Cookie", "<redacted>"], ["Accept", "*/*"]],
                     "body": body},
            live={"content_type": "application/json; charset=utf-8", "body": answer},
        )
        for n, (method, path, body, answer) in enumerate(
            [
                ("POST", "/bookings/" + "segment/" * 30, '"' * 50 + "'" * 49, "\\" * 300),
                ("PUT", '/bookings/7?q="""x\\', "é" * 120, json.dumps({"a": ["\n"] * 90})),
                ("GET", "/bookings/12345678-1234-1234-1234-123456789abc", "", ""),
                ("PATCH", "/b", "x" * 87, "y" * 88),
            ]
        )
    ]  # fmt: skip
    return data


def test_generated_modules_are_ruff_clean(tmp_path: Path) -> None:
    plain, hostile = tmp_path / "test_plain.py", tmp_path / "test_hostile.py"
    plain.write_text(module_text())
    hostile.write_text(module_text(hostile_report(), "https://new.example.test:8443/api/" * 3))
    code, output = ruff(plain, hostile)
    assert (code, output) == (0, "All checks passed!\n2 files already formatted\n")
    compile(hostile.read_text(), str(hostile), "exec")


# -- the module, run -----------------------------------------------------------------------------


@dataclass
class NewGateway:
    """A loopback server answering recorded requests; `answers`: (method, target) -> answer."""

    answers: dict[tuple[str, str], tuple[int, str, bytes]]
    secret: str | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = SHADOW_HEADER in request.headers or SIGNATURE_HEADER in request.headers
        problem = verify(
            self.secret, request.headers.get(SHADOW_HEADER), request.headers.get(SIGNATURE_HEADER),
            request.method, request.raw_path, body, time.time(),
        ) if signed else "unsigned"  # fmt: skip
        self.seen.append(
            {
                "target": f"{request.method} {request.raw_path}",
                "key": request.headers.get("X-Application-Key"),
                "body": body,
                "dry_run": problem is None,
            }
        )
        status, content_type, answer = self.answers[(request.method, request.raw_path)]
        return web.Response(status=status, body=answer, headers={"Content-Type": content_type})


def answers(post: dict[str, Any], get: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {
        ("POST", "/bookings/resource"): (201, "application/json", json.dumps(post).encode()),
        ("GET", "/bookings/7?expand=1"): (200, "application/json", json.dumps(get).encode()),
    }


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(table: dict[tuple[str, str], Any], secret: str | None = None) -> NewGateway:
        gateway = NewGateway(table, secret)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", gateway.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        gateway.url = f"http://127.0.0.1:{await serve_on_loopback(runner)}"
        return gateway

    yield start
    for runner in runners:
        await runner.cleanup()


async def run_module(module: Path, env: dict[str, str]) -> tuple[int, str]:
    """`python -m pytest -q` on `module`, with `env` for the STRANGLER_* variables."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STRANGLER_") and key != "PYTEST_CURRENT_TEST"
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        cwd=ROOT, env={**environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def exported(tmp_path: Path) -> Path:
    module = tmp_path / "test_captured_bookings.py"
    module.write_text(module_text(url="http://127.0.0.1:9"))  # nothing listens: env must win
    return module


def targets(seen: Iterable[dict[str, Any]]) -> list[tuple[str, str | None, bytes, bool]]:
    return [(s["target"], s["key"], s["body"], s["dry_run"]) for s in seen]


async def test_exported_module_passes_against_the_same_answers(
    tmp_path: Path, start_gateway: Callable[..., Any]
) -> None:
    regenerated = {**GET_ANSWER, "meta": {"generated_at": "2026-11-28T12:00:00Z"}}  # ignored
    gateway = await start_gateway(answers(POST_ANSWER, regenerated))
    env = {"STRANGLER_NEW_URL": gateway.url, KEY_VARIABLE: "demo"}
    code, output = await run_module(exported(tmp_path), env)
    assert code == 0, output
    assert "2 passed" in output
    assert targets(gateway.seen) == [
        ("POST /bookings/resource", "demo", POST_BODY, False),
        ("GET /bookings/7?expand=1", None, b"", False),
    ]


async def test_exported_module_fails_on_a_planted_difference(
    tmp_path: Path, start_gateway: Callable[..., Any]
) -> None:
    gateway = await start_gateway(answers({**POST_ANSWER, "tour_id": 2}, GET_ANSWER))
    env = {"STRANGLER_NEW_URL": gateway.url, KEY_VARIABLE: "demo"}
    code, output = await run_module(exported(tmp_path), env)
    assert code == 1, output
    assert "1 failed, 1 passed" in output
    assert "FAILED" in output and "test_post_bookings_resource" in output
    assert (
        "AssertionError: POST /bookings/resource: the new gateway does not answer as the old one "
        "did (live: the old gateway's recorded answer, shadow: the new gateway's)"
    ) in output
    assert "$.tour_id: live=1 shadow=2" in output


async def test_a_missing_secret_fails_naming_its_variable(
    tmp_path: Path, start_gateway: Callable[..., Any]
) -> None:
    gateway = await start_gateway(answers(POST_ANSWER, GET_ANSWER))
    code, output = await run_module(exported(tmp_path), {"STRANGLER_NEW_URL": gateway.url})
    assert code == 1, output
    assert "1 failed, 1 passed" in output
    assert (
        f"AssertionError: {KEY_VARIABLE} is not set: the value of a header recorded as <redacted>"
    ) in output
    assert targets(gateway.seen) == [("GET /bookings/7?expand=1", None, b"", False)]


async def test_writes_go_as_signed_dry_runs_given_the_shadow_secret(
    tmp_path: Path, start_gateway: Callable[..., Any]
) -> None:
    """A dry-run POST answers with an id of its own: compared by presence and type only."""
    gateway = await start_gateway(answers({**POST_ANSWER, "id": 9001}, GET_ANSWER), secret="s3")
    env = {"STRANGLER_NEW_URL": gateway.url, KEY_VARIABLE: "demo", "STRANGLER_SHADOW_SECRET": "s3"}
    code, output = await run_module(exported(tmp_path), env)
    assert code == 0, output
    assert "2 passed" in output
    assert targets(gateway.seen) == [
        ("POST /bookings/resource", "demo", POST_BODY, True),
        ("GET /bookings/7?expand=1", None, b"", False),
    ]


TOKEN_VARIABLE = "STRANGLER_EXPORT_QUERY_ACCESS_TOKEN"
REDACTED_GET = "/bookings/7?expand=1&access_token=<redacted>"


def with_redacted_query() -> dict[str, Any]:
    """The report with its GET recorded as a query token redacted (proxy.migration.mismatches)."""
    data = report()
    for kept in data["mismatches"]:
        if kept["path"] == "/bookings/7?expand=1":
            kept["path"] = REDACTED_GET
    return data


def test_redacted_query_parameters_are_named_in_the_docstring() -> None:
    text = module_text(with_redacted_query())
    head = text[: text.index('"""', 3)]
    assert f"- {TOKEN_VARIABLE}: the access_token query parameter, recorded as" in head
    assert f'        "{REDACTED_GET}",\n' in text  # replayed as recorded, filled in at test time


async def test_a_redacted_query_parameter_is_sent_from_the_environment(
    tmp_path: Path, start_gateway: Callable[..., Any]
) -> None:
    table = answers(POST_ANSWER, GET_ANSWER)
    table[("GET", "/bookings/7?expand=1&access_token=t%2Fk%20n")] = table.pop(
        ("GET", "/bookings/7?expand=1")
    )
    gateway = await start_gateway(table)
    module = tmp_path / "test_captured_bookings.py"
    module.write_text(module_text(with_redacted_query()))
    env = {"STRANGLER_NEW_URL": gateway.url, KEY_VARIABLE: "demo", TOKEN_VARIABLE: "t/k n"}
    code, output = await run_module(module, env)
    assert code == 0, output
    assert targets(gateway.seen)[1] == (
        "GET /bookings/7?expand=1&access_token=t%2Fk%20n", None, b"", False,
    )  # fmt: skip
    del env[TOKEN_VARIABLE]
    code, output = await run_module(module, env)
    assert code == 1, output
    assert "1 failed, 1 passed" in output
    assert (
        f"AssertionError: {TOKEN_VARIABLE} is not set: the value of a query parameter recorded "
        "as <redacted>"
    ) in output
