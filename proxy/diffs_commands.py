"""`strangler diffs RESOURCE [--noise | --export pytest]`: a resource's shadow report from the
admin API (GET /-/diffs), as text (for `cli.py`).

- plain: the figures, then the kept mismatches grouped by class, most severe first;
- `--noise`: the learned noise paths with their counts, then the `ignore:` line to paste under the
  resource's `shadow:` in routes.yaml (`proxy.migration.noise.ignore_rules`);
- `--export pytest`: a pytest module that replays the kept mismatches against the new gateway
  (`proxy.control.export`), on stdout; its default target is the shadow backend's URL, read from
  GET /-/routes. Exit 1 with one line on stderr when there is nothing to export.

The admin API is read through `fetch` (URL in, JSON out), which raises the caller's error.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from proxy.arguments import KEEP, SHOWN
from proxy.clock import iso_time
from proxy.control import export
from proxy.migration.diff import CLASSES, Difference
from proxy.migration.noise import NOISE_AFTER, ignore_rules, noise_paths
from proxy.ready_text import percent
from proxy.routing.jsonpath import is_valid

PROG = "strangler"
Fetch = Callable[[str], Any]
UNCLASSIFIED = "unclassified"  # a mismatch from a proxy that did not classify it


def diffs(args: argparse.Namespace, fetch: Fetch, out: TextIO) -> int:
    admin = args.admin.rstrip("/")
    limit = args.limit if args.limit is not None else KEEP if args.export else SHOWN
    query = urllib.parse.urlencode({"resource": args.resource, "limit": limit})
    report = fetch(f"{admin}/-/diffs?{query}")
    if args.export:
        return export_pytest(report, admin, fetch, out)
    if args.noise:
        print_noise(report, out)
    else:
        print_diffs(report, out)
    return 0


def export_pytest(report: Mapping[str, Any], admin: str, fetch: Fetch, out: TextIO) -> int:
    """The module on `out`; 1 with one line on stderr when no mismatch can become a test."""
    if not export.cases(report):
        print(f"{PROG} diffs: {export.nothing_text(report)}", file=sys.stderr)
        return 1
    name = shadow_backend(report)
    backend = fetch(f"{admin}/-/routes")["backends"].get(name)
    if backend is None:
        print(f"{PROG} diffs: no backend {name!r} in the table to export against", file=sys.stderr)
        return 1
    now = iso_time(None, "seconds")
    out.write(export.pytest_module(report, backend["url"], admin_url=admin, exported_at=now))
    return 0


def shadow_backend(report: Mapping[str, Any]) -> str:
    """The new gateway's name: the route's shadow backend, else the newest mismatch's."""
    if report.get("shadow"):
        return str(report["shadow"]["backend"])
    return str(export.cases(report)[0].mismatch["shadow_backend"])


# -- text --------------------------------------------------------------------------------------


def print_diffs(body: Mapping[str, Any], out: TextIO) -> None:
    """A resource's shadow figures, then its kept mismatches by class, most severe first::

    bookings: shadowed to drf at 100%, writes dry-run
    compared: 98 match, 2 mismatch, 5 noise, 0 error, 0 dropped; match rate 98.0%
    by class: 1 status, 1 value, 5 noise

    status (1)
      2026-11-28T10:00:00.123Z  POST /bookings/resource  request 8c1f  dry-run write
        live legacy 201, shadow drf 404
        status: live=201 shadow=404
    """
    print(f"{body['resource']}: {shadow_text(body['shadow'])}", file=out)
    counts = ", ".join(
        f"{body.get(key, 0.0):.0f} {key}"
        for key in ("match", "mismatch", "noise", "error", "dropped")
    )
    print(f"compared: {counts}; match rate {percent(body['match_rate'])}", file=out)
    classes = [f"{n:.0f} {kind}" for kind, n in body.get("classes", {}).items() if n]
    if classes:
        print(f"by class: {', '.join(classes)}", file=out)
    for kind, mismatches in grouped(body["mismatches"]):
        print(f"\n{kind} ({len(mismatches)})", file=out)
        for mismatch in mismatches:
            print_mismatch(mismatch, out)
    if not body["mismatches"]:
        print("no mismatch kept", file=out)


def shadow_text(shadow: Mapping[str, Any] | None) -> str:
    if not shadow:
        return "not shadowed"
    writes = ", writes dry-run" if shadow.get("writes") == "dry-run" else ""
    return f"shadowed to {shadow['backend']} at {shadow['percent']:g}%{writes}"


def grouped(mismatches: Iterable[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The mismatches by class, most severe first (an unknown class after the known ones), each
    group in the report's order (newest first)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for mismatch in mismatches:
        groups.setdefault(str(mismatch.get("class") or UNCLASSIFIED), []).append(mismatch)
    order = [*CLASSES, *sorted(set(groups) - set(CLASSES))]
    return [(kind, groups[kind]) for kind in order if kind in groups]


def print_mismatch(mismatch: Mapping[str, Any], out: TextIO) -> None:
    request_id = mismatch["request_id"] or "-"
    dry_run = "  dry-run write" if mismatch.get("dry_run") else ""
    print(
        f"  {mismatch['time']}  {mismatch['method']} {mismatch['path']}  request {request_id}"
        f"{dry_run}\n"
        f"    live {mismatch['backend']} {mismatch['live_status']}, "
        f"shadow {mismatch['shadow_backend']} {mismatch['shadow_status']}",
        file=out,
    )
    for difference in mismatch["differences"]:
        # a difference of another class than its mismatch's (noise beside a value) says so
        kind = difference.get("class")
        tag = f"  ({kind})" if kind and kind != mismatch.get("class") else ""
        print(f"    {Difference.from_json(difference).text()}{tag}", file=out)


def print_noise(body: Mapping[str, Any], out: TextIO) -> None:
    """The learned noise paths, most seen first, then the rule to paste into routes.yaml::

    bookings: noise learned on the primary alone (a path is noise once seen 3 times)
      7  $.meta.generated_at  ignored already
      4  $.results[*].token   noise
      1  $.links.self         1 of 3
    to ignore it, under resources.bookings.shadow in routes.yaml:
    ignore: ["$.meta.generated_at", "$.results[*].token"]
    """
    resource, shadow = body["resource"], body.get("shadow") or {}
    after = int(shadow.get("noise_after", NOISE_AFTER))
    declared = [str(path) for path in shadow.get("ignore", ())]
    counts: Mapping[str, int] = body.get("noise_paths", {})
    if not counts:
        learning = shadow.get("learn_noise") or 0
        how = f"on {learning:.0%} of shadowed GETs" if learning else "off: set shadow.learn_noise"
        print(f"{resource}: no noise learned yet (learning is {how})", file=out)
        return
    threshold = f"a path is noise once seen {after} times"
    print(f"{resource}: noise learned on the primary alone ({threshold})", file=out)
    new = [path for path in noise_paths(counts, after) if path not in declared]
    width, path_width = len(str(max(counts.values()))), max(len(path) for path in counts)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for path, times in ranked:
        state = path_state(path, times, after, declared, new)
        print(f"  {times:>{width}}  {path.ljust(path_width)}  {state}", file=out)
    if not new:
        print(f"nothing to add to ignore: no new path seen {after} times yet", file=out)
        return
    rule = body.get("noise_rules") or ignore_rules(counts, after, keep=declared)
    print(f"to ignore it, under resources.{resource}.shadow in routes.yaml:\n{rule}", file=out)


def path_state(path: str, times: int, after: int, declared: list[str], new: list[str]) -> str:
    if path in declared:
        return "ignored already"
    if times < after:
        return f"{times} of {after}"
    if path in new:
        return "noise"
    return "noise, covered by a shorter path" if is_valid(path) else "noise, not an ignore path"
