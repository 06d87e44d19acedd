"""`strangler diffs R --export pytest`: a resource's kept mismatches as a runnable pytest module.

Pure: the shadow report (the JSON of `GET /-/diffs?resource=R`, `proxy.control.diffs`) in, the
text of a module out. One test per request shape (the method and `proxy.observe.debt.path_shape`
of the path), from the newest mismatch of that shape; `noise` mismatches and those without a
replayable request (none recorded, or its body over the capture cap) are left out. Each test
sends its recorded request to the new gateway and expects the old gateway's recorded answer::

    def test_post_bookings_resource() -> None:
        \"\"\"POST /bookings/resource: legacy 201, drf 404 (status, dry-run write).

        Recorded at 2026-11-28T10:00:00.123Z, request 8c1f.
        \"\"\"
        replay(
            "POST",
            "/bookings/resource",
            headers=[
                ("Content-Type", "application/json"),
                ("X-Application-Key", secret("STRANGLER_EXPORT_X_APPLICATION_KEY")),
            ],
            body=b'{"tour_id": 1}',
            status=201,
            content_type="application/json",
            expected=b'{"id": 52, "tour_id": 1}',
        )

The text is already what `ruff format` makes of it (`proxy.control.pysource`).
"""

from __future__ import annotations

import base64
import binascii
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.control.pysource import WIDTH, Call, Expression, Keyword, Lit, Raw, Seq, render
from proxy.dryrun import SECRET_VARIABLE
from proxy.migration.mismatches import REDACTED, parameter_variable, redacted_parameters
from proxy.observe.debt import path_shape

NEW_URL_VARIABLE = "STRANGLER_NEW_URL"
SECRET_PREFIX = "STRANGLER_EXPORT_"
NAME_CHARS = 60  # of a test's name after `test_`: `def test_…() -> None:` fits a line


class NothingToExport(ValueError):
    """No kept mismatch can become a test; the message says why."""


@dataclass(frozen=True)
class Case:
    """One test: a recorded request and the old gateway's recorded answer to it."""

    name: str
    mismatch: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str | None  # None when the answer was not recorded
    expected: bytes | None  # None when its body was not kept: status and Content-Type only


def pytest_module(
    report: Mapping[str, Any],
    target_url: str,
    *,
    admin_url: str | None = None,
    exported_at: str | None = None,
) -> str:
    """The module's text; raises NothingToExport when no kept mismatch can become a test.

    `target_url`: the new gateway's URL at export time (the shadow backend's), the default of
    STRANGLER_NEW_URL; `admin_url` and `exported_at` are named in the module's docstring.
    """
    chosen = cases(report)
    if not chosen:
        raise NothingToExport(nothing_text(report))
    ignore = [Lit(str(path)) for path in (report.get("shadow") or {}).get("ignore", ())]
    lines = [
        *docstring(report, chosen, target_url, admin_url, exported_at),
        *PRELUDE,
        *render(Call("os.environ.get", [Lit(NEW_URL_VARIABLE), Lit(target_url)]), 0, "NEW_URL = "),
        *render(Call("Ignore.compile", [Seq("[", "]", ignore)]), 0, "IGNORE = "),
        *HELPERS,
    ]
    for case in chosen:
        lines.extend(["", "", *test_lines(case)])
    return "\n".join(lines) + "\n"


def cases(report: Mapping[str, Any]) -> list[Case]:
    """The newest replayable, non-noise mismatch of each request shape, newest first."""
    kept = sorted(report.get("mismatches", ()), key=lambda m: str(m.get("time")), reverse=True)
    chosen: list[Case] = []
    shapes: set[tuple[str, str]] = set()
    for mismatch in kept:
        shape = (str(mismatch["method"]), path_shape(str(mismatch["path"]).split("?", 1)[0]))
        request = replayable(mismatch)
        if shape in shapes or request is None or mismatch.get("class") == "noise":
            continue
        shapes.add(shape)
        name = unique(case_name(*shape), (case.name for case in chosen))
        chosen.append(Case(name, mismatch, *request, *recorded_answer(mismatch)))
    return chosen


def replayable(mismatch: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], ...], bytes] | None:
    """The recorded request's headers and body; None when there is nothing to send."""
    request = mismatch.get("request")
    if not isinstance(request, Mapping):
        return None
    body = body_bytes(request)
    if body is None:
        return None
    return tuple((str(name), str(value)) for name, value in request.get("headers", ())), body


def recorded_answer(mismatch: Mapping[str, Any]) -> tuple[str | None, bytes | None]:
    live = mismatch.get("live")
    if not isinstance(live, Mapping):
        return None, None
    return str(live.get("content_type") or ""), body_bytes(live)


def body_bytes(recorded: Mapping[str, Any]) -> bytes | None:
    """`body` (UTF-8 text) or `body_base64` as bytes; None when neither was kept."""
    if isinstance(recorded.get("body"), str):
        return str(recorded["body"]).encode()
    if isinstance(recorded.get("body_base64"), str):
        try:
            return base64.b64decode(recorded["body_base64"], validate=True)
        except binascii.Error:
            return None
    return None


def case_name(method: str, shape: str) -> str:
    """`("GET", "/bookings/{id}")` -> `test_get_bookings_id`."""
    words = re.sub(r"[^a-z0-9]+", "_", f"{method} {shape}".lower()).strip("_")
    return "test_" + (words[:NAME_CHARS].rstrip("_") or "request")


def unique(name: str, taken: Iterable[str]) -> str:
    """`name`, or `name_2`, `name_3`... when it is taken."""
    used = set(taken)
    found, number = name, 2
    while found in used:
        found, number = f"{name}_{number}", number + 1
    return found


def secret_variable(header: str) -> str:
    """`X-Application-Key` -> `STRANGLER_EXPORT_X_APPLICATION_KEY`."""
    return SECRET_PREFIX + re.sub(r"[^A-Z0-9]+", "_", header.upper()).strip("_")


def nothing_text(report: Mapping[str, Any]) -> str:
    kept = list(report.get("mismatches", ()))
    noise = sum(1 for mismatch in kept if mismatch.get("class") == "noise")
    return (
        f"{report.get('resource')}: no mismatch to export ({len(kept)} kept: {noise} noise, "
        f"{len(kept) - noise} without a replayable request)"
    )


# -- the module's text -------------------------------------------------------------------------


def docstring(
    report: Mapping[str, Any],
    chosen: Sequence[Case],
    target_url: str,
    admin_url: str | None,
    exported_at: str | None,
) -> list[str]:
    resource = prose(report.get("resource"))
    old = prose(chosen[0].mismatch.get("backend"))
    new = prose(chosen[0].mismatch.get("shadow_backend"))
    where = f" from the admin API at {prose(admin_url)}" if admin_url else ""
    when = f" on {prose(exported_at)}" if exported_at else ""
    secrets = {
        secret_variable(name): name
        for case in chosen
        for name, value in case.headers
        if value == REDACTED
    }
    parameters = {
        parameter_variable(name): name
        for case in chosen
        for name in redacted_parameters(str(case.mismatch["path"]))
    }
    variables = [
        f"{NEW_URL_VARIABLE}: the new gateway's base URL (default {prose(target_url)}, {new}'s "
        "URL at export time).",
        *(
            f"{variable}: the {prose(name)} header, recorded as {REDACTED}; a test that sends it "
            "fails while it is unset."
            for variable, name in sorted(secrets.items())
        ),
        *(
            f"{variable}: the {prose(name)} query parameter, recorded as {REDACTED}; a test that "
            "sends it fails while it is unset."
            for variable, name in sorted(parameters.items())
        ),
        f"{SECRET_VARIABLE}: when set, writes (POST, PUT, PATCH, DELETE) are sent as signed "
        "dry runs (proxy.dryrun): the new gateway stores nothing, and the fields it generates "
        "(proxy.migration.diff.GENERATED) are compared by presence and type only. Unset, writes "
        "are sent as they are, and land.",
    ]
    paragraphs = [
        fill(f"Parity tests captured from the shadow report of `{resource}`."),
        fill(
            f"Exported by `strangler diffs {resource} --export pytest`{where}{when}: "
            f"{len(chosen)} recorded request{'s' if len(chosen) > 1 else ''} (the newest of each "
            f"request shape) that the old gateway, {old}, answered differently from the new one, "
            f"{new}. Each test sends its request to the new gateway and fails unless the answer is "
            f"the one {old} gave: its status, Content-Type and body, outside the route's "
            "shadow.ignore paths (differences of class noise pass)."
        ),
        "Run it from the project's root (the tests import `proxy`):",
        f"    {NEW_URL_VARIABLE}=URL python -m pytest -q THIS_FILE",
        "Environment:\n" + "\n".join(fill(f"- {text}", "  ") for text in variables),
    ]
    return ['"""' + "\n\n".join(paragraphs), '"""', ""]


def fill(text: str, indent: str = "") -> str:
    return textwrap.fill(
        text, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def prose(value: object) -> str:
    """Report text safe inside a docstring: printable ASCII without backslashes or quotes."""
    return re.sub(r'[^ -~]|[\\"]', "?", str(value))


PRELUDE = """\
from __future__ import annotations

import http.client
import os
import time
import urllib.parse

from proxy.dryrun import SECRET_VARIABLE, sign
from proxy.migration.diff import GENERATED, NOISE, Captured, compare
from proxy.migration.mismatches import unredacted
from proxy.routing.jsonpath import Ignore

WRITES = ("POST", "PUT", "PATCH", "DELETE")""".splitlines()

HELPERS = '''

def secret(variable: str) -> str:
    """The value of a header recorded as <redacted>, from the environment at test time."""
    value = os.environ.get(variable)
    if not value:
        raise AssertionError(f"{variable} is not set: the value of a header recorded as <redacted>")
    return value


def replay(
    method: str,
    target: str,
    *,
    headers: list[tuple[str, str]],
    body: bytes,
    status: int,
    content_type: str | None,
    expected: bytes | None,
) -> None:
    """Send a recorded request to the new gateway; fail unless it answers as the old one did.

    `content_type` and `expected` are None when the old answer's Content-Type or body was not
    recorded: what was not recorded is taken from the new answer, so not compared.
    """
    dry_run = bool(os.environ.get(SECRET_VARIABLE)) and method in WRITES
    new = send(method, unredacted(target, os.environ), headers, body, dry_run)
    old_type = new.content_type if content_type is None else content_type.encode("latin-1")
    old = Captured.of(status, old_type, (new.body or b"") if expected is None else expected)
    if dry_run:
        found = compare(old, new, ignore=IGNORE, generated=GENERATED)
    else:
        found = compare(old, new, ignore=IGNORE)
    differences = [d.text() for d in found if d.class_ != NOISE]
    if differences:
        raise AssertionError(
            f"{method} {target}: the new gateway does not answer as the old one did "
            "(live: the old gateway's recorded answer, shadow: the new gateway's)\\n  "
            + "\\n  ".join(differences)
        )


def send(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, dry_run: bool
) -> Captured:
    """The new gateway's answer to one request (a signed dry run when `dry_run`)."""
    base = urllib.parse.urlsplit(NEW_URL)
    path = base.path.rstrip("/") + target
    if dry_run:
        signed = sign(os.environ[SECRET_VARIABLE], method, path, body, time.time())
        headers = [*headers, *signed.items()]
    kind = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
    connection = kind(base.netloc, timeout=30)
    try:
        # the recorded Host goes as it came: the gateways build their hrefs from it
        recorded_host = any(name.lower() == "host" for name, _ in headers)
        connection.putrequest(method, path, skip_host=recorded_host, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body or method in WRITES:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "").encode("latin-1")
        return Captured.of(response.status, content_type, response.read())
    finally:
        connection.close()'''.splitlines()


def test_lines(case: Case) -> list[str]:
    mismatch = case.mismatch
    method, target = str(mismatch["method"]), str(mismatch["path"])
    headers = [
        Seq("(", ")", [Lit(name), Call("secret", [Lit(secret_variable(name))])])
        if value == REDACTED
        else Seq("(", ")", [Lit(name), Lit(value)])
        for name, value in case.headers
    ]
    arguments: list[Expression] = [
        Lit(method),
        Lit(target),
        Keyword("headers", Seq("[", "]", headers, explode=bool(headers))),
        Keyword("body", Lit(case.body)),
        Keyword("status", Raw(str(int(mismatch["live_status"])))),
        Keyword(
            "content_type", Raw("None") if case.content_type is None else Lit(case.content_type)
        ),
        Keyword("expected", Raw("None") if case.expected is None else Lit(case.expected)),
    ]
    return [
        f"def {case.name}() -> None:",
        *docstring_lines(case),
        *render(Call("replay", arguments, explode=True), 4),
    ]


def docstring_lines(case: Case) -> list[str]:
    """What the test replays, each line cut to fit::

    \"\"\"POST /bookings/resource: legacy 201, drf 404 (status, dry-run write).

    Recorded at 2026-11-28T10:00:00.123Z, request 8c1f.
    \"\"\"
    """
    m = case.mismatch
    answers = f"{m.get('backend')} {m.get('live_status')}, {m.get('shadow_backend')}"
    kind = f"{m.get('class') or 'unclassified'}{', dry-run write' if m.get('dry_run') else ''}"
    first = f"{m['method']} {m['path']}: {answers} {m.get('shadow_status')} ({kind})."
    second = f"Recorded at {m.get('time')}, request {m.get('request_id') or '-'}."
    return [f'    """{cut(first, 7)}', "", f"    {cut(second, 4)}", '    """']


def cut(text: str, indent: int) -> str:
    """`text` made docstring-safe (`prose`), with `...` when it would pass WIDTH at `indent`."""
    safe = prose(text)
    return safe if indent + len(safe) <= WIDTH else safe[: WIDTH - indent - 3] + "..."
