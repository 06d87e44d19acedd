"""The routing table as data, and its pure match: what a parsed routes.yaml is.

`RouteTable` is immutable (frozen dataclasses, read-only mappings); `proxy.routing.parser` is the
only way one is made from routes.yaml. `RouteTable.match(method, target)` and `routing_key` are
pure and on every request's path: they only walk dictionaries built once when the table is made.
`RoutesError` is what a routes file that cannot be used raises, wherever it is found out.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

from proxy.routing.patterns import Node, is_nested, nested_tries, path_segments

OTHER_RESOURCE = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RoutesError(ValueError):
    """The file cannot be used; `errors` holds every problem as `file:line: message`."""

    def __init__(self, errors: tuple[str, ...]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class TlsOptions:
    """How the proxy speaks TLS to an https backend; the defaults verify with the system CAs.

    Paths are as given in routes.yaml, relative ones joined to the file's directory.
    """

    ca_file: str | None = None  # PEM CA certificates trusted instead of the system store
    verify: bool = True
    server_name: str | None = None  # sent as SNI and verified; None: the URL's host
    client_cert: str | None = None  # PEM certificate (and its key, when client_key is None)
    client_key: str | None = None  # PEM key, unencrypted

    def context(self) -> ssl.SSLContext:
        """A new client context: TLS 1.2 or later, certificate and host name checked unless
        `verify` is false. Raises OSError (ssl.SSLError) when a file cannot be loaded.

        Costly (it reads the files): `proxy.http.tls` builds one per distinct options.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file is None:
            context.load_default_certs()
        else:
            context.load_verify_locations(self.ca_file)
        if self.client_cert is not None:
            context.load_cert_chain(self.client_cert, self.client_key, password=no_password)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def no_password() -> bytes:
    """Encrypted keys are refused: without it OpenSSL would prompt on the terminal."""
    return b""


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    scheme: str
    host: str
    port: int
    connect_timeout: float = 2.0
    read_timeout: float = 30.0
    max_connections: int = 100
    tls: TlsOptions | None = None  # None for http; an https backend always gets options
    pool_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme == "https" and self.tls is None:
            object.__setattr__(self, "tls", TlsOptions())
        origin = f"{self.scheme}://{self.host}:{self.port}"
        # One string (its hash is cached) keys the connection pool: scheme, address, TLS options.
        key = origin if self.tls is None else f"{origin} {self.tls!r}"
        object.__setattr__(self, "pool_key", key)


@dataclass(frozen=True)
class Canary:
    backend: str
    percent: float
    sticky: str | None


@dataclass(frozen=True)
class Shadow:
    backend: str
    percent: float
    ignore: tuple[str, ...]
    learn_noise: float = 0.0  # share of shadowed GETs also asked of the primary a second time
    noise_after: int = 3  # times a path must differ on the primary alone to count as noise
    writes: bool = False  # `writes: dry-run`: POST, PUT, PATCH and DELETE are copied too


@dataclass(frozen=True)
class Fallback:
    backend: str
    on: frozenset[int]


@dataclass(frozen=True)
class Guard:
    max_error_rate: float | None
    max_p99_ms: float | None
    min_requests: int
    window: float
    dry_run: bool


SHADOW_STEP = "shadow"  # a rollout step that only compares copies (numbers are canary percents)
ROLLOUT_STATES = ("pending", "running", "paused", "aborted", "done")


@dataclass(frozen=True)
class Gates:
    min_match: float | None = None  # shadow match %, on the steps that shadow
    max_error_delta: float | None = None  # new 5xx % minus old 5xx %, in points
    max_p99_ratio: float | None = None  # new p99 / old p99


@dataclass(frozen=True)
class Rollout:
    """A resource's rollout plan and its progress (`state`, `step`, `since`), as in the table."""

    to: str
    steps: tuple[str | float, ...]  # SHADOW_STEP or a canary percent
    step_seconds: float
    min_requests: int
    gates: Gates
    sticky: str | None = None  # the canary's sticky key when the plan adds the canary
    state: str = "pending"
    step: int = 0
    since: str | None = None

    @property
    def current(self) -> str | float:
        return self.steps[self.step]


@dataclass(frozen=True)
class Pin:
    """A pinned client (a resource's `clients:`, chosen in `proxy.migration.pins`): a request
    whose `match` key is `value` (or hashes to `value_sha256`), or from an address in the
    network `value` (client_ip), goes to `backend`."""

    match: str  # "header:NAME", "cookie:NAME" or "client_ip"
    backend: str
    value: str | None = None  # in clear; for client_ip an address or a CIDR network
    value_sha256: str | None = None  # lower-case hex SHA-256 of the value's UTF-8 bytes


@dataclass(frozen=True)
class Route:
    resource: str
    backend: str
    methods: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    canary: Canary | None = None
    shadow: Shadow | None = None
    fallback: Fallback | None = None
    guard: Guard | None = None
    rollout: Rollout | None = None
    clients: tuple[Pin, ...] = ()  # pinned clients, checked before methods and canary

    @property
    def in_flight(self) -> bool:
        """Shadowed, on a canary, or with a running plan: what `max_in_flight` counts."""
        running = self.rollout is not None and self.rollout.state == "running"
        canary = self.canary is not None and self.canary.percent > 0
        return running or canary or self.shadow is not None


@dataclass(frozen=True)
class Decision:
    resource: str
    backend: Backend
    route: Route | None
    refused: bool = False  # a target without a routing key: answered 400, never forwarded


@dataclass(frozen=True)
class _Plan:
    decision: Decision
    by_method: dict[str, Decision]  # a dict, not a Mapping: compiled, `.get` is then a direct call


@dataclass(frozen=True)
class RouteTable:
    version: int
    backends: Mapping[str, Backend]
    default: str
    routes: Mapping[str, Route]
    source: str
    sha256: str
    max_in_flight: int | None = None  # resources in shadow/canary/rollout at once; None: any
    # `groups:` (proxy.routing.groups): flipped and rolled back together; members are listed
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # By routing key; the key None (a target to refuse) has a plan too: `match` needs no branch.
    _plans: dict[str | None, _Plan] = field(init=False, repr=False, compare=False)
    _fallthrough: Decision = field(init=False, repr=False, compare=False)
    # A trie per first segment with nested keys (`tours/*/departures`; proxy.routing.patterns).
    _nested: Mapping[str | None, Node[_Plan]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plans: dict[str | None, _Plan] = {
            name: self._plan(route) for name, route in self.routes.items()
        }
        default = self.backends[self.default]
        plans[None] = _Plan(Decision(OTHER_RESOURCE, default, None, refused=True), {})
        object.__setattr__(self, "_plans", plans)
        object.__setattr__(self, "_fallthrough", Decision(OTHER_RESOURCE, default, None))
        object.__setattr__(self, "_nested", nested_tries({n: plans[n] for n in self.routes}))

    def _plan(self, route: Route) -> _Plan:
        by_method = {
            method: Decision(route.resource, self.backends[name], route)
            for method, name in route.methods.items()
        }
        return _Plan(Decision(route.resource, self.backends[route.backend], route), by_method)

    def match(self, method: str, path: str) -> Decision:
        """Where a request goes, by the `routing_key` of `path` (the raw request target, or its
        part before `?`); methods are case-sensitive. A target without a key gets a decision
        with `refused` set (resource "other").

        >>> table.match("GET", "/bookings%2F7/customers")   # doctest: +SKIP
        Decision(resource='bookings', backend=Backend(name='drf', ...), route=Route(...))
        """
        if self._nested:  # only then: a table without nested keys matches as it always did
            return self._match_nested(method, path)
        plan = self._plans.get(routing_key(path))
        if plan is None:
            return self._fallthrough
        return plan.by_method.get(method, plan.decision)

    def _match_nested(self, method: str, path: str) -> Decision:
        """`match` of a table with nested keys: the path's segments read once (`path_segments`,
        whose first is the `routing_key`); a first segment with nested keys walks its trie, any
        other is one lookup as in `match`."""
        segments = path_segments(path)
        key = None if segments is None else segments[0]
        trie = self._nested.get(key)
        if trie is None or segments is None:
            plan = self._plans.get(key)
        else:
            found = trie.best(segments)
            plan = None if found is None else found[1]
        if plan is None:
            return self._fallthrough
        return plan.by_method.get(method, plan.decision)

    def resource_label(self, path: str) -> str:
        """The `resource` metric label of a path: a resource of the table, or "other"."""
        return self.match("GET", path).resource

    def backend_for(self, resource: str) -> str:
        """The backend a resource's requests go to (per-method overrides aside). A nested key
        not listed goes where its shape matches now: `/tours/*/departures` read as a path, its
        `*` an id no literal key names."""
        route = self.routes.get(resource)
        if route is None and is_nested(resource):
            route = self.match("GET", "/" + resource).route
        return self.default if route is None else route.backend


def routing_key(target: str) -> str | None:
    """The routing key of a request target: the first segment of the path the backends resolve.

    Both gateways run under gunicorn, which takes the target's path (an absolute-form target's
    path after its authority; `?query` and `#fragment` cut off) and percent-decodes it once,
    `%2F` included, into PATH_INFO. Flask and Django then split PATH_INFO on "/" as it is: empty
    segments, `.` and `..`, `;params` and `\\` are not normalised (`//bookings/7` is not
    `/bookings/7` to them: both answer 404). So the key is what lies between the first and the
    second "/" of the decoded path; "" when there is none (`/`, `//x`, `http://h`, `*`). None
    for a target of no form gunicorn and both frameworks read alike (not `/…`, `*` or
    `scheme://…`): the proxy refuses it with 400.

    >>> [routing_key(t) for t in ("/bookings/7?x=1", "/bookings%2F7", "http://h/book%69ngs")]
    ['bookings', 'bookings', 'bookings']
    >>> [routing_key(t) for t in ("//bookings/7", "/%2Fbookings", "/./bookings", "x:bookings")]
    ['', '', '.', None]
    """
    if target[:1] != "/":
        return _non_origin_key(target)
    slash = target.find("/", 1)
    segment = target[1:] if slash == -1 else target[1:slash]
    if "?" in segment or "#" in segment or "%" in segment:
        return _decoded_key(segment)
    return segment


ABSOLUTE_FORM_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def _decoded_key(segment: str) -> str:
    """The key in a raw first segment holding `?`, `#` or `%`: cut at the query or fragment,
    then decoded (a decoded `/` ends it)."""
    for stop in "?#":
        segment = segment.partition(stop)[0]
    return unquote(segment).partition("/")[0] if "%" in segment else segment


def _non_origin_key(target: str) -> str | None:
    """The key of an asterisk-form or absolute-form target; None for anything else."""
    if target == "*":
        return ""
    form = ABSOLUTE_FORM_RE.match(target)
    if form is None:
        return None
    path = target[form.end() :]
    return routing_key(path) if path.startswith("/") else ""
