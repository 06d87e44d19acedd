"""A first routes.yaml for an API nobody has typed in yet: resources found in an OpenAPI 3
document or in an access log, each on the default backend, as commented YAML text.

Pure functions over already-read data (`proxy.init_commands` reads the files):

- `from_openapi(spec, nested=False)`: the routing keys of the document's paths, with the paths
  behind each one (`/tours/{id}/departures` gives `tours`, and `tours/*/departures` when
  `nested`: a templated segment becomes `*`);
- `from_access_log(lines)`: the routing keys of the requests in JSON lines as the proxy's access
  log writes them (their `path`) or in the combined log format (`"GET /x HTTP/1.1"`), with
  their request counts, most requested first;
- `routes_text(...)`: the table, which `strangler validate` accepts as it is.

A path whose first segment is templated (`/{tenant}/...`), empty (`/`) or not a name the table
accepts is left out, and listed in a comment so nobody wonders where it went.

>>> keys = from_openapi({"paths": {"/tours/{id}": {}, "/tours/{id}/departures": {}}}, nested=True)
>>> [(key.name, key.paths) for key in keys]
[('tours', ('/tours/{id}',)), ('tours/*/departures', ('/tours/{id}/departures',))]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.routing.model import routing_key
from proxy.routing.rules import NAME_RE, RESOURCE_RE

TEMPLATE_RE = re.compile(r"\{[^/{}]+\}")
COMBINED_RE = re.compile(r'"[A-Z]+ (\S+) HTTP/[0-9.]+"')
YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


@dataclass(frozen=True)
class Key:
    """A routing key for the table, and where it was seen: OpenAPI paths, or a request count."""

    name: str
    paths: tuple[str, ...] = ()
    requests: int | None = None


@dataclass(frozen=True)
class Found:
    keys: tuple[Key, ...]
    skipped: tuple[str, ...]  # paths or targets that give no usable key


def from_openapi(spec: Mapping[str, Any], *, nested: bool = False) -> tuple[Key, ...]:
    """The keys of `spec["paths"]`, in the document's order (`found_in_openapi` also says what
    was left out)."""
    return found_in_openapi(spec, nested=nested).keys


def found_in_openapi(spec: Mapping[str, Any], *, nested: bool = False) -> Found:
    paths = spec.get("paths")
    if not isinstance(paths, Mapping):
        raise ValueError("not an OpenAPI 3 document: it has no `paths` mapping")
    seen: dict[str, list[str]] = {}
    skipped: list[str] = []
    for path in paths:
        keys = path_keys(str(path), nested=nested)
        if not keys:
            skipped.append(str(path))
        for key in keys:  # the path is listed under its most specific key only
            seen.setdefault(key, [])
        if keys:
            seen[keys[-1]].append(str(path))
    return Found(tuple(Key(name, tuple(where)) for name, where in seen.items()), tuple(skipped))


def path_keys(path: str, *, nested: bool) -> list[str]:
    """The keys an OpenAPI path template routes by: its first segment, and with `nested` the
    pattern of every deeper shape whose first segment is a literal.

    >>> path_keys("/tours/{id}/departures/{d}", nested=True)
    ['tours', 'tours/*/departures']
    >>> path_keys("/{tenant}/bookings", nested=True), path_keys("/", nested=False)
    ([], [])
    """
    segments = path.strip("/").split("/")
    first = segments[0]
    if not first or TEMPLATE_RE.search(first) or not RESOURCE_RE.match(first):
        return []
    keys = [first]
    if nested:
        pattern = [first]
        for segment in segments[1:]:
            if not segment:
                break
            pattern.append("*" if TEMPLATE_RE.fullmatch(segment) else segment)
            if pattern[-1] != "*" and RESOURCE_RE.match(pattern[-1]):
                keys.append("/".join(pattern))
            elif pattern[-1] != "*":
                break
    return keys


def from_access_log(lines: Iterable[str]) -> Found:
    """Keys by request count (most first, then by name) from access-log lines: the proxy's
    JSON lines (their `path`) or the combined log format. Lines that are neither are skipped
    (the first few are returned in `skipped`)."""
    counts: dict[str, int] = {}
    skipped: list[str] = []
    for line in lines:
        target = request_target(line)
        key = None if target is None else routing_key(target)
        if key is None or not key or not RESOURCE_RE.match(key):
            if line.strip() and len(skipped) < 5:
                skipped.append(line.strip()[:120])
            continue
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Found(tuple(Key(name, requests=count) for name, count in ordered), tuple(skipped))


def request_target(line: str) -> str | None:
    """The request target of one access-log line, if it has one.

    >>> request_target('{"method": "GET", "path": "/bookings/7?x=1", "status": 200}')
    '/bookings/7?x=1'
    >>> request_target('10.0.0.1 - - [28/Nov/2026:10:00:00 +0000] "GET /tours/1 HTTP/1.1" 200 5')
    '/tours/1'
    """
    text = line.strip()
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return None
        path = record.get("path") if isinstance(record, dict) else None
        return path if isinstance(path, str) else None
    match = COMBINED_RE.search(text)
    return None if match is None else match.group(1)


def routes_text(
    keys: Sequence[Key],
    backends: Sequence[tuple[str, str]],
    default: str,
    *,
    source: str,
    skipped: Sequence[str] = (),
) -> str:
    """The table: a header comment, the backends, `default`, and every key on `default`.

    `backends`: (name, URL) pairs, `default` among them; `source`: how the keys were found, for
    the header comment.
    """
    names = [name for name, _ in backends]
    if default not in names:
        raise ValueError(f"the default backend {default!r} is not one of {', '.join(names)}")
    for name, _ in backends:
        if not NAME_RE.match(name):
            raise ValueError(f"backend name {name!r} must be a letter then letters, digits, _, -")
    others = [name for name in names if name != default]
    lines = [
        f"# routes.yaml written by `strangler init` from {source}.",
        f"# {len(keys)} resources, every one on {default}. Check the backend URLs, then run",
        "# `strangler validate` and `strangler serve`; move a resource with",
        f"# `strangler flip RESOURCE {others[0] if others else default}`"
        " (and back with `strangler rollback RESOURCE`).",
        "version: 1",
        "backends:",
        *(f"  {name}: {{url: {json.dumps(url)}}}" for name, url in backends),
        f"default: {default}",
    ]
    lines += ["resources:" if keys else "resources: {}"]
    for key in keys:
        lines += [f"  {yaml_key(key.name)}: {default}{key_comment(key)}"]
    if skipped:
        lines += ["# Left out (no routing key the table can name):"]
        lines += [f"#   {text}" for text in skipped]
    return "\n".join(lines) + "\n"


def yaml_key(name: str) -> str:
    """A resource name as a YAML key: quoted when YAML would read it as something else."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.~/*-]*", name) is not None
    return name if plain and name.lower() not in YAML_WORDS else json.dumps(name)


def key_comment(key: Key) -> str:
    if key.requests is not None:
        return f"  # {key.requests} requests"
    return f"  # {', '.join(key.paths)}" if key.paths else ""
