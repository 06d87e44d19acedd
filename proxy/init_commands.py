"""`strangler init`: a first routes.yaml on stdout, from an OpenAPI 3 document
(`--from-openapi SPEC`) or an access log (`--from-access-log FILE`), every resource on the
default backend (for `proxy.cli`; the table itself is `proxy.routing.scaffold`'s).

    strangler init --from-openapi openapi.yaml --default legacy \\
        --backend legacy=http://10.0.0.5:5000 --backend drf=http://10.0.0.6:8000 > routes.yaml
"""

from __future__ import annotations

import argparse
import sys

import yaml

from proxy.routing import scaffold

DEFAULT_BACKENDS = (("legacy", "http://127.0.0.1:5000"), ("drf", "http://127.0.0.1:8000"))


def init(args: argparse.Namespace) -> int:
    try:
        backends = parse_backends(args.backend) if args.backend else DEFAULT_BACKENDS
        found, source = discover(args)
        default = args.default or backends[0][0]
        text = scaffold.routes_text(
            found.keys, backends, default, source=source, skipped=found.skipped
        )
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"strangler init: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def discover(args: argparse.Namespace) -> tuple[scaffold.Found, str]:
    if args.from_openapi is not None:
        spec = yaml.safe_load(args.from_openapi.read_text(encoding="utf-8"))
        if not isinstance(spec, dict):
            raise ValueError(f"{args.from_openapi}: not an OpenAPI 3 document")
        found = scaffold.found_in_openapi(spec, nested=args.nested)
        return found, f"the OpenAPI document {args.from_openapi}"
    with args.from_access_log.open(encoding="utf-8", errors="replace") as lines:
        found = scaffold.from_access_log(lines)
    return found, f"the access log {args.from_access_log} (request counts as comments)"


def parse_backends(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`["legacy=http://h:5000", ...]` -> `(("legacy", "http://h:5000"), ...)`."""
    pairs = []
    for value in values:
        name, equals, url = value.partition("=")
        if not equals or not name or not url:
            raise ValueError(f"--backend {value!r} is not NAME=URL")
        pairs.append((name, url))
    return tuple(pairs)
