"""Pinned clients: the pins of a resource's `clients:`, pre-parsed for the request path.

`BackendChooser.choose` (`proxy.migration.canary`) asks these before the per-method overrides
and the canary; only a tester's `X-Strangler-Force` goes before them. A resource without pins
has no plan and costs nothing. A resource's pins are grouped by source (`header:NAME`,
`cookie:NAME`, `client_ip`): per request, each source's key is read once, hashed once with
SHA-256 only when that source has `value_sha256` pins, and looked up in a dict; a client
address is parsed once and tested against the networks in order. When pins of several sources
match, the one listed first wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256

from proxy.routing.model import Backend, Pin, RouteTable
from proxy.routing.rules import parse_sticky
from proxy.settings import IPNetwork


@dataclass(frozen=True, slots=True)
class Pick:
    order: int  # the pin's place in the resource's list: of several matching, the first wins
    backend: Backend


@dataclass(frozen=True, slots=True)
class PinSource:
    """The pins of a resource that read one key of the request."""

    kind: str  # "header", "cookie" or "client_ip"
    name: bytes  # lower-cased header name, or the cookie name ("" for client_ip)
    clear: Mapping[bytes, Pick] = field(default_factory=dict)  # by the value's bytes
    hashed: Mapping[bytes, Pick] = field(default_factory=dict)  # by the value's SHA-256 digest
    networks: tuple[tuple[IPNetwork, Pick], ...] = ()

    def find(self, key: bytes) -> Pick | None:
        """The first pin of this source matching the request's `key` (a header or cookie value,
        or the client's address as text), if any."""
        if self.kind == "client_ip":
            return self._by_address(key)
        found = self.clear.get(key)
        if self.hashed:
            hashed = self.hashed.get(sha256(key).digest())
            if hashed is not None and (found is None or hashed.order < found.order):
                found = hashed
        return found

    def _by_address(self, key: bytes) -> Pick | None:
        try:
            address = ipaddress.ip_address(key.decode("ascii").strip())
        except (ValueError, UnicodeDecodeError):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:10.0.0.7 from a dual-stack listener
        for network, pick in self.networks:
            if address in network:
                return pick
        return None


Sources = tuple[PinSource, ...]
Draft = tuple[dict[bytes, Pick], dict[bytes, Pick], list[tuple[IPNetwork, Pick]]]


def make_pin_plans(table: RouteTable) -> dict[str, Sources]:
    """The pin sources of every route that has pins."""
    return {
        name: pin_sources(route.clients, table.backends)
        for name, route in table.routes.items()
        if route.clients
    }


def pin_sources(pins: tuple[Pin, ...], backends: Mapping[str, Backend]) -> Sources:
    """Pins grouped by the key they read, each group in the order of its first pin.

    >>> from proxy.routing.model import Backend
    >>> legacy = Backend("legacy", "http://h:1", "http", "h", 1)
    >>> pins = (Pin("header:X-Key", "legacy", "k"), Pin("client_ip", "legacy", "10.0.0.0/8"))
    >>> [(s.kind, s.name, list(s.clear)) for s in pin_sources(pins, {"legacy": legacy})]
    [('header', b'x-key', [b'k']), ('client_ip', b'', [])]
    """
    drafts: dict[tuple[str, bytes], Draft] = {}
    for order, pin in enumerate(pins):
        kind, name = parse_sticky(pin.match) or ("", "")
        source = (kind, name.lower().encode() if kind == "header" else name.encode())
        clear, hashed, networks = drafts.setdefault(source, ({}, {}, []))
        pick = Pick(order, backends[pin.backend])
        if kind == "client_ip":
            networks.append((ipaddress.ip_network((pin.value or "").strip()), pick))
        elif pin.value_sha256 is not None:
            hashed.setdefault(bytes.fromhex(pin.value_sha256), pick)
        else:
            clear.setdefault((pin.value or "").encode(), pick)
    return tuple(
        PinSource(kind, name, clear, hashed, tuple(networks))
        for (kind, name), (clear, hashed, networks) in drafts.items()
    )


def first_pick(sources: Sources, key_of: Callable[[str, bytes], bytes | None]) -> Pick | None:
    """The first listed pin matching the request whose keys `key_of(kind, name)` reads."""
    best: Pick | None = None
    for source in sources:
        key = key_of(source.kind, source.name)
        pick = source.find(key) if key else None
        if pick is not None and (best is None or pick.order < best.order):
            best = pick
    return best
