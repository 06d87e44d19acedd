"""A resource's pinned clients, as routes.yaml holds them (read for `proxy.routing.parser`, with
its `NodeReader` and `file:line` errors; chosen per request in `proxy.migration.pins`).

```yaml
resources:
  bookings:
    backend: drf
    clients:                     # checked in order; the first that matches wins
      - {match: "header:X-Application-Key", value: "key-of-broken-client", backend: legacy}
      - {match: "cookie:session", value_sha256: "9f86d081884c7d65…", backend: legacy}
      - {match: client_ip, value: "10.0.0.0/8", backend: legacy}
```

Each entry has `match` (as a canary's `sticky`), exactly one of `value` (in clear) and
`value_sha256` (the lower-case hex SHA-256 of the value's UTF-8 bytes; header and cookie only),
and a `backend`. A client_ip `value` is an address or a CIDR network without host bits set.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping

from yaml.nodes import SequenceNode

from proxy.routing.model import Backend, Pin
from proxy.routing.nodes import Entry, NodeReader, line_of
from proxy.routing.rules import STICKY, Rule, parse_sticky

CLIENT_KEYS = ("match", "value", "value_sha256", "backend")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}\Z")
TEXT = Rule((str,), lambda value: value != "", "a non-empty quoted string")
SHA256 = Rule((str,), lambda value: SHA256_RE.match(value) is not None, "64 hex digits")
# The parser's check of a backend name: (entry, where, backends) -> the name, or None (reported).
BackendRef = Callable[[Entry, str, Mapping[str, Backend]], str | None]


def read_clients(
    reader: NodeReader,
    name: str,
    entry: Entry | None,
    backend_ref: BackendRef,
    backends: Mapping[str, Backend],
) -> tuple[Pin, ...]:
    """`clients:` of resource `name`, () when absent (errors reported on `reader`; bad entries
    left out)."""
    if entry is None:
        return ()
    if not isinstance(entry.value, SequenceNode) or not entry.value.value:
        got = "an empty list" if isinstance(entry.value, SequenceNode) else None
        got = got or reader.kind(entry.value)
        message = f"clients of resource '{name}' must be a list of {{match, value, backend}}"
        reader.error(entry.key_line, f"{message}, got {got}")
        return ()
    pins: list[Pin] = []
    seen: dict[tuple[str, str], int] = {}
    for number, item in enumerate(entry.value.value, 1):
        where = f"client {number} of resource '{name}'"
        item_entry = Entry(str(number), line_of(item), item)
        pin = read_pin(reader, where, item_entry, lambda ref, at: backend_ref(ref, at, backends))
        if pin is None:
            continue
        same = pin_identity(pin)
        if same in seen:
            reader.error(line_of(item), f"{where} pins the same client as client {seen[same]}")
            continue
        seen[same] = number
        pins.append(pin)
    return tuple(pins)


def read_pin(
    reader: NodeReader, where: str, entry: Entry, backend_ref: Callable[[Entry, str], str | None]
) -> Pin | None:
    found = reader.section(entry, where, CLIENT_KEYS, ("match", "backend"))
    if found is None:
        return None
    before = len(reader.errors)
    match: str | None = reader.option(found, "match", where, STICKY, None)
    backend = backend_ref(found["backend"], where)
    value: str | None = reader.option(found, "value", where, TEXT, None)
    digest: str | None = reader.option(found, "value_sha256", where, SHA256, None)
    if ("value" in found) == ("value_sha256" in found):
        problem = "has both value and value_sha256" if "value" in found else "needs a value"
        reader.error(entry.key_line, f"{where} {problem} (exactly one: value or value_sha256)")
    elif match == "client_ip" and "value_sha256" in found:
        line = found["value_sha256"].key_line
        reader.error(line, f"{where}: client_ip takes value (an address or CIDR), not a hash")
    elif match == "client_ip" and value is not None and client_network(value) is None:
        rule = "an IP address or a CIDR network like 10.0.0.0/8 (no host bits set)"
        reader.error(line_of(found["value"].value), f"{where}: value must be {rule}, got {value!r}")
    if len(reader.errors) > before or match is None or backend is None:
        return None
    return Pin(match, backend, value, None if digest is None else digest.lower())


def client_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """`"10.0.0.0/8"` -> that network; `"10.0.0.7"` -> 10.0.0.7/32; None for anything else."""
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError:
        return None


def pin_identity(pin: Pin) -> tuple[str, str]:
    """What two pins of the same client share: their source (header names in lower case) and
    the value's network or digest; a digest of a value in clear is computed."""
    kind, name = parse_sticky(pin.match) or ("", "")
    source = f"{kind}:{name.lower() if kind == 'header' else name}"
    if kind == "client_ip":
        return source, str(client_network(pin.value or ""))
    return source, pin.value_sha256 or value_digest(pin.value or "")


def value_digest(value: str) -> str:
    """The `value_sha256` of a value in clear.

    >>> value_digest("demo")[:16]
    '2a97516c354b6884'
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def pin_json(pin: Pin) -> dict[str, str]:
    """A pin as the admin API shows it: a header or cookie value only as its digest.

    >>> pin_json(Pin("cookie:s", "legacy", "demo"))["value_sha256"][:8]
    '2a97516c'
    """
    if pin.match == "client_ip":
        return {"match": pin.match, "value": pin.value or "", "backend": pin.backend}
    digest = pin.value_sha256 or value_digest(pin.value or "")
    return {"match": pin.match, "value_sha256": digest, "backend": pin.backend}
