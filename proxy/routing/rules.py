"""What routes.yaml may hold: the keys of each section, the names it accepts, and the rule
each value must pass, worded as its error message says it (`must be a number > 0, got 0`).

`proxy.routing.parser` walks the file and applies these; `parse_url` and `parse_sticky` also
read a backend's URL and a canary's `sticky` for the rest of the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from proxy.routing import jsonpath

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
# A name, or a nested key: `tours/*/departures` (proxy.routing.patterns).
RESOURCE_RE = re.compile(r"[A-Za-z0-9_.~-]+(/([A-Za-z0-9_.~-]+|\*))*\Z")
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\Z")

TOP_KEYS = ("version", "backends", "default", "resources", "max_in_flight", "groups")
BACKEND_KEYS = ("url", "connect_timeout", "read_timeout", "max_connections", "tls")
TLS_KEYS = ("ca_file", "verify", "server_name", "client_cert", "client_key")
TLS_FILES = ("ca_file", "client_cert", "client_key")
ROUTE_KEYS = (
    *("backend", "methods", "canary", "shadow", "fallback", "guard", "rollout", "clients"),
)
CANARY_KEYS = ("backend", "percent", "sticky")
SHADOW_KEYS = ("backend", "percent", "ignore", "learn_noise", "noise_after", "writes")
FALLBACK_KEYS = ("backend", "on")
GUARD_KEYS = ("max_error_rate", "max_p99_ms", "min_requests", "window", "dry_run")
ROLLOUT_KEYS = (
    *("to", "steps", "step_seconds", "min_requests", "gates", "sticky", "state", "step", "since"),
)
GATES_KEYS = ("min_match", "max_error_delta", "max_p99_ratio")


@dataclass(frozen=True)
class Rule:
    """What an option's value must be, and how the error message says so."""

    types: tuple[type, ...]
    ok: Callable[[Any], bool]
    text: str

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types) and self.ok(value)


POSITIVE = Rule((int, float), lambda value: value > 0, "a number > 0")
SECONDS = Rule((int, float), lambda value: value > 0, "a number of seconds > 0")
FRACTION = Rule((int, float), lambda value: 0 <= value <= 1, "a number from 0 to 1")
PERCENT = Rule((int, float), lambda value: 0 <= value <= 100, "a number from 0 to 100")
AT_LEAST_ONE = Rule((int,), lambda value: value >= 1, "an integer >= 1")
FLAG = Rule((bool,), lambda value: True, "true or false")
# YAML 1.1 reads a bare `off` as false: both mean off.
WRITES = Rule((str, bool), lambda value: value in ("off", "dry-run", False), "off or dry-run")
STATUS = Rule((int,), lambda value: 400 <= value <= 599, "a status code from 400 to 599")
JSONPATH = Rule((str,), jsonpath.is_valid, "a JSONPath like $.a.b or $.a[*].b")
FILE_PATH = Rule((str,), lambda value: value != "", "a file path")
HOST_NAME = Rule((str,), lambda value: HOST_NAME_RE.match(value) is not None, "a host name")
AT_LEAST_ZERO = Rule((int,), lambda value: value >= 0, "an integer >= 0")
STEP = Rule(
    (str, int, float),
    lambda value: value == "shadow" if isinstance(value, str) else 0 < value <= 100,
    "shadow or a canary percent in (0, 100]",
)
STATE = Rule(
    (str,),
    lambda value: value in ("pending", "running", "paused", "aborted", "done"),
    "pending, running, paused, aborted or done",
)
ISO_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")
TIME = Rule((str,), lambda value: ISO_TIME_RE.match(value) is not None, 'a quoted UTC time "…T…Z"')
STICKY = Rule(
    (str,),
    lambda value: parse_sticky(value) is not None,
    '"header:NAME", "cookie:NAME" or "client_ip"',
)


def backend_env_var(name: str) -> str:
    """`drf-v2` -> `STRANGLER_BACKEND_DRF_V2_URL`."""
    return f"STRANGLER_BACKEND_{name.upper().replace('-', '_')}_URL"


def parse_url(value: str) -> tuple[str, str, str, int] | None:
    """`"http://h:5000/"` -> `("http://h:5000", "http", "h", 5000)`; None if not a plain origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{parts.netloc}", parts.scheme, parts.hostname, port


def parse_sticky(value: str) -> tuple[str, str] | None:
    """`"header:X-Key"` -> `("header", "X-Key")`; `"client_ip"` -> `("client_ip", "")`."""
    if value == "client_ip":
        return "client_ip", ""
    kind, _, name = value.partition(":")
    if kind in ("header", "cookie") and HEADER_NAME_RE.match(name):
        return kind, name
    return None
