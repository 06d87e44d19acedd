"""Which backend serves a request once the table matched it: canary share and tester override.

Canary: `canary: {backend, percent, sticky}` moves a share of a resource's traffic to
`canary.backend`. Each request falls into a bucket in [0, 10000): a stable hash (blake2b, salted
per resource) of the client's sticky key, or a random bucket when the request carries no key. It
goes to the canary iff `bucket < percent * 100`. So a client keeps its side while the percentage
holds, and raising the percentage only adds clients to the canary side (monotonic growth). The
salt makes the share per resource independent: the 10% of clients on one resource's canary are
not the same 10% as on another's.

Sticky keys: `header:NAME` (the first NAME header), `cookie:NAME` (that cookie of the Cookie
headers), `client_ip` (the peer address; behind trusted proxies, the right-most X-Forwarded-For
address that is not a trusted proxy). An empty or missing key: a random bucket per request.

Precedence, first that applies: the tester override; a pinned client (`clients:`,
`proxy.migration.pins`), counted in `strangler_pinned_total`; a per-method override
(`methods: {POST: legacy}`) for that method; the canary's share of the other methods; the
resource's backend.

Tester override: `X-Strangler-Force: <backend>; token=<STRANGLER_TESTER_TOKEN>` sends the request
to that backend, whatever the resource, when the token is right (constant-time comparison) and
the backend exists in the table; otherwise the header is ignored.
`proxy.dataplane.heads.request_head` strips the header before forwarding in every case
(`FORCE_HEADER`).
"""

from __future__ import annotations

import hmac
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from hashlib import blake2b

from proxy.http.messages import Headers, Request, header_value
from proxy.migration.pins import Sources, first_pick, make_pin_plans
from proxy.observe.metrics import Metrics
from proxy.routing.model import Backend, Decision, Route, RouteTable
from proxy.routing.rules import parse_sticky
from proxy.settings import IPNetwork, Settings, is_trusted

BUCKETS = 10_000
FORCE_HEADER = b"x-strangler-force"
ROUTED = "routed"
CANARY = "canary"
FORCED = "forced"
PINNED = "pinned"


@dataclass(frozen=True)
class CanaryPlan:
    """A route's canary, pre-parsed for the hot path."""

    backend: Backend
    threshold: int  # buckets below this go to the canary
    kind: str  # "header", "cookie", "client_ip" or "" (no sticky key)
    name: bytes  # lower-cased header name, or the cookie name
    salt: bytes  # 16 bytes derived from the resource name


def bucket(key: bytes, salt: bytes) -> int:
    """The key's bucket in [0, BUCKETS): the same for the same key and salt, in every process."""
    digest = blake2b(key, digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def resource_salt(resource: str) -> bytes:
    return blake2b(resource.encode(), digest_size=16).digest()


def threshold(percent: float) -> int:
    """`10` -> 1000: buckets [0, 1000) are the canary side; `12.34` -> 1234."""
    return min(BUCKETS, max(0, round(percent * BUCKETS / 100)))


def make_plans(table: RouteTable) -> dict[str, CanaryPlan]:
    """The canary plan of every route that has a canary."""
    plans = {}
    for name, route in table.routes.items():
        canary = route.canary
        if canary is None:
            continue
        sticky = parse_sticky(canary.sticky) if canary.sticky else None
        kind, key = sticky or ("", "")
        key_bytes = key.lower().encode() if kind == "header" else key.encode()
        plans[name] = CanaryPlan(
            table.backends[canary.backend],
            threshold(canary.percent),
            kind,
            key_bytes,
            resource_salt(name),
        )
    return plans


def cookie_value(headers: Headers, name: bytes) -> bytes | None:
    """Cookie `name` from the Cookie headers: `Cookie: a=1; session=xyz` -> b"xyz" for session."""
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for pair in value.split(b";"):
            cookie, equals, content = pair.strip().partition(b"=")
            if equals and cookie == name:
                return content.strip()
    return None


def client_address(
    peer: str, trusted: bool, headers: Headers, networks: tuple[IPNetwork, ...]
) -> str:
    """The client's address: the peer, or behind trusted proxies the right-most untrusted
    X-Forwarded-For address (all trusted: the left-most). With 10.0.0.0/8 trusted, peer
    10.0.0.2 and `X-Forwarded-For: 1.2.3.4, 10.0.0.1`, the client is 1.2.3.4.
    """
    if not trusted:
        return peer
    chain = [
        address.strip()
        for key, value in headers
        if key.lower() == b"x-forwarded-for"
        for address in value.decode("latin-1").split(",")
        if address.strip()
    ]
    for address in reversed(chain):
        if not is_trusted(address, networks):
            return address
    return chain[0] if chain else peer


def parse_force(value: bytes) -> tuple[str, bytes] | None:
    """`b"drf; token=s3cret"` -> `("drf", b"s3cret")`; None when malformed."""
    backend, _, rest = value.partition(b";")
    key, equals, token = rest.strip().partition(b"=")
    if not equals or key.strip().lower() != b"token" or not backend.strip():
        return None
    return backend.strip().decode("latin-1"), token.strip()


class BackendChooser:
    """Chooses each request's backend after `table.match`; one per process.

    Holds the canary plans of the table in force (rebuilt when a reload swaps the table), the
    tester token and the random source for keyless requests.
    """

    def __init__(
        self, settings: Settings, rng: random.Random | None = None, metrics: Metrics | None = None
    ) -> None:
        token = settings.tester_token
        self._token = token.encode() if token else None
        self._networks = settings.trusted_proxies
        self._rng = rng or random.Random()
        self._table: RouteTable | None = None
        self._plans: Mapping[str, CanaryPlan] = {}
        self._pins: Mapping[str, Sources] = {}
        self._metrics = metrics  # counts pinned requests

    def choose(
        self, table: RouteTable, decision: Decision, request: Request
    ) -> tuple[Backend, str]:
        """The backend for `request` and why: ROUTED (the table's choice), CANARY, PINNED or
        FORCED."""
        if self._token is not None:
            forced = self.forced(table, request.headers)
            if forced is not None:
                return forced, FORCED
        route = decision.route
        if route is not None and route.clients:
            pinned = self.pinned(table, route.resource, request)
            if pinned is not None:
                return pinned, PINNED
        if route is None or route.canary is None or request.method in route.methods:
            return decision.backend, ROUTED
        return self._canary(table, route, decision, request)

    def forced(self, table: RouteTable, headers: Headers) -> Backend | None:
        """The backend a tester forces with a valid token, if any."""
        value = header_value(headers, FORCE_HEADER)
        parsed = None if value is None else parse_force(value)
        if parsed is None or self._token is None:
            return None
        name, token = parsed
        if not hmac.compare_digest(token, self._token):
            return None
        return table.backends.get(name)

    def plan(self, table: RouteTable, resource: str) -> CanaryPlan | None:
        if table is not self._table:
            self._plans = make_plans(table)
            self._pins = make_pin_plans(table)
            self._table = table
        return self._plans.get(resource)

    def pinned(self, table: RouteTable, resource: str, request: Request) -> Backend | None:
        """The backend a pin of `resource` sends `request` to, counted; None if none matches."""
        self.plan(table, resource)  # the pins of this table
        pick = first_pick(self._pins.get(resource, ()), partial(self.request_key, request))
        if pick is None:
            return None
        if self._metrics is not None:
            self._metrics.pinned(resource, pick.backend.name)
        return pick.backend

    def sticky_key(self, plan: CanaryPlan, request: Request) -> bytes | None:
        return self.request_key(request, plan.kind, plan.name)

    def request_key(self, request: Request, kind: str, name: bytes) -> bytes | None:
        """The key a sticky canary or a pin reads: a header, a cookie or the client address."""
        if kind == "header":
            return header_value(request.headers, name)
        if kind == "cookie":
            return cookie_value(request.headers, name)
        if kind == "client_ip":
            address = client_address(request.peer, request.trusted, request.headers, self._networks)
            return address.encode()
        return None

    def _canary(
        self, table: RouteTable, route: Route, decision: Decision, request: Request
    ) -> tuple[Backend, str]:
        plan = self.plan(table, route.resource)
        if plan is None or plan.backend.name == decision.backend.name:
            return decision.backend, ROUTED
        key = self.sticky_key(plan, request)
        slot = bucket(key, plan.salt) if key else self._rng.randrange(BUCKETS)
        if slot < plan.threshold:
            return plan.backend, CANARY
        return decision.backend, ROUTED
