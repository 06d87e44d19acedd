"""The routing table: parsed and validated from routes.yaml (the only module that reads YAML).

`parse_table` turns the file's text into an immutable `RouteTable`, or raises `RoutesError`
carrying every problem found as `file:line: message`. `RouteTable.match` is pure and only walks
dictionaries built once when the table is made.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy.routing import jsonpath

T = TypeVar("T")

OTHER_RESOURCE = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
RESOURCE_RE = re.compile(r"[A-Za-z0-9_.~-]+\Z")
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\Z")

TOP_KEYS = ("version", "backends", "default", "resources")
BACKEND_KEYS = ("url", "connect_timeout", "read_timeout", "max_connections", "tls")
TLS_KEYS = ("ca_file", "verify", "server_name", "client_cert", "client_key")
TLS_FILES = ("ca_file", "client_cert", "client_key")
ROUTE_KEYS = ("backend", "methods", "canary", "shadow", "fallback", "guard")
CANARY_KEYS = ("backend", "percent", "sticky")
SHADOW_KEYS = ("backend", "percent", "ignore")
FALLBACK_KEYS = ("backend", "on")
GUARD_KEYS = ("max_error_rate", "max_p99_ms", "min_requests", "window", "dry_run")


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

        Costly (it reads the files): `proxy.upstream` builds one per distinct options.
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


@dataclass(frozen=True)
class Route:
    resource: str
    backend: str
    methods: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    canary: Canary | None = None
    shadow: Shadow | None = None
    fallback: Fallback | None = None
    guard: Guard | None = None


@dataclass(frozen=True)
class Decision:
    resource: str
    backend: Backend
    route: Route | None
    refused: bool = False  # a target without a routing key: answered 400, never forwarded


@dataclass(frozen=True)
class _Plan:
    decision: Decision
    by_method: Mapping[str, Decision]


@dataclass(frozen=True)
class RouteTable:
    version: int
    backends: Mapping[str, Backend]
    default: str
    routes: Mapping[str, Route]
    source: str
    sha256: str
    # By routing key; the key None (a target to refuse) has a plan too: `match` needs no branch.
    _plans: Mapping[str | None, _Plan] = field(init=False, repr=False, compare=False)
    _fallthrough: Decision = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plans: dict[str | None, _Plan] = {
            name: self._plan(route) for name, route in self.routes.items()
        }
        default = self.backends[self.default]
        plans[None] = _Plan(Decision(OTHER_RESOURCE, default, None, refused=True), {})
        object.__setattr__(self, "_plans", plans)
        object.__setattr__(self, "_fallthrough", Decision(OTHER_RESOURCE, default, None))

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
        plan = self._plans.get(routing_key(path))
        if plan is None:
            return self._fallthrough
        return plan.by_method.get(method, plan.decision)

    def resource_label(self, path: str) -> str:
        """The `resource` metric label of a path: a resource of the table, or "other"."""
        resource = routing_key(path)
        return resource if resource is not None and resource in self.routes else OTHER_RESOURCE

    def backend_for(self, resource: str) -> str:
        """The backend a resource's requests go to (per-method overrides aside)."""
        route = self.routes.get(resource)
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


def load_table(
    path: Path, environ: Mapping[str, str] | None = None, max_bytes: int | None = None
) -> RouteTable:
    """Read and parse a routes file; errors name the file as given.

    A file over `max_bytes` (`Settings.max_routes_bytes`) is refused before it is parsed:
    `routes.yaml:1: file is over the 1048576-byte limit (STRANGLER_MAX_ROUTES_BYTES)`.
    Blocking and slow for a big table: a running proxy calls it in a thread (`proxy.reload`).
    """
    try:
        with path.open("rb") as file:
            data = file.read() if max_bytes is None else file.read(max_bytes + 1)
    except OSError as exc:
        raise RoutesError((f"{path}: cannot read: {exc.strerror or exc}",)) from exc
    if max_bytes is not None and len(data) > max_bytes:
        limit = f"the {max_bytes}-byte limit (STRANGLER_MAX_ROUTES_BYTES)"
        raise RoutesError((f"{path}:1: file is over {limit}",))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RoutesError((f"{path}:{line}: not UTF-8 text",)) from exc
    return parse_table(text, str(path), environ)


def parse_table(
    text: str, source: str = "routes.yaml", environ: Mapping[str, str] | None = None
) -> RouteTable:
    """Parse routes.yaml text; `environ` (default: the process environment) may override URLs.

    >>> parse_table("version: 1\\nbackends: {a: {url: 'http://h:1'}}\\ndefault: a\\n").default
    'a'
    """
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    root = _compose(text, source)
    parser = _Parser(source, os.environ if environ is None else environ)
    table = parser.table(root, sha256)
    if parser.errors or table is None:
        raise RoutesError(parser.messages())
    return table


def backend_env_var(name: str) -> str:
    """`drf-v2` -> `STRANGLER_BACKEND_DRF_V2_URL`."""
    return f"STRANGLER_BACKEND_{name.upper().replace('-', '_')}_URL"


def compose_nodes(text: str, source: str = "routes.yaml") -> Node | None:
    """The YAML node tree (with marks), for tools that edit the text in place."""
    return _compose(text, source)


def _compose(text: str, source: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise RoutesError((f"{source}:{line}: invalid YAML: {problem}",)) from exc
    except yaml.YAMLError as exc:
        raise RoutesError((f"{source}:1: invalid YAML: {exc}",)) from exc


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


@dataclass(frozen=True)
class _Entry:
    key: str
    key_line: int
    value: Node


@dataclass(frozen=True)
class _Rule:
    """What an option's value must be, and how the error message says so."""

    types: tuple[type, ...]
    ok: Callable[[Any], bool]
    text: str

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types) and self.ok(value)


POSITIVE = _Rule((int, float), lambda value: value > 0, "a number > 0")
SECONDS = _Rule((int, float), lambda value: value > 0, "a number of seconds > 0")
FRACTION = _Rule((int, float), lambda value: 0 <= value <= 1, "a number from 0 to 1")
PERCENT = _Rule((int, float), lambda value: 0 <= value <= 100, "a number from 0 to 100")
AT_LEAST_ONE = _Rule((int,), lambda value: value >= 1, "an integer >= 1")
FLAG = _Rule((bool,), lambda value: True, "true or false")
STATUS = _Rule((int,), lambda value: 400 <= value <= 599, "a status code from 400 to 599")
JSONPATH = _Rule((str,), jsonpath.is_valid, "a JSONPath like $.a.b or $.a[*].b")
FILE_PATH = _Rule((str,), lambda value: value != "", "a file path")
HOST_NAME = _Rule((str,), lambda value: HOST_NAME_RE.match(value) is not None, "a host name")
STICKY = _Rule(
    (str,),
    lambda value: parse_sticky(value) is not None,
    '"header:NAME", "cookie:NAME" or "client_ip"',
)


class _Parser:
    """Walks the YAML nodes, collecting every error with its line, building the table."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.errors: list[tuple[int, str]] = []
        self.declared: set[str] | None = None  # backend names, once that section is readable
        self.constructor = yaml.SafeLoader("")

    def messages(self) -> tuple[str, ...]:
        ordered = sorted(self.errors, key=lambda item: item[0])
        return tuple(f"{self.source}:{line}: {message}" for line, message in ordered)

    def error(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    # -- generic shapes ------------------------------------------------------------------------

    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return node
        return self.constructor.construct_object(node, deep=True)

    def kind(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        value = self.scalar(node)
        return "nothing" if value is None else repr(value)

    def entries(
        self, node: MappingNode, where: str, allowed: tuple[str, ...] | None, what: str = "key"
    ) -> dict[str, _Entry]:
        """The mapping's entries by key; reports duplicate, non-scalar and unknown keys."""
        found: dict[str, _Entry] = {}
        for key_node, value in node.value:
            line = line_of(key_node)
            if not isinstance(key_node, ScalarNode) or key_node.value == "":
                self.error(line, f"keys of {where} must be plain names")
                continue
            key = str(key_node.value)
            if key in found:
                first = found[key].key_line
                self.error(line, f"duplicate {what} '{key}' in {where} (first on line {first})")
            elif allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.error(line, f"unknown key '{key}' in {where} (expected one of: {expected})")
            else:
                found[key] = _Entry(key, line, value)
        return found

    def mapping(self, entry: _Entry, where: str) -> MappingNode | None:
        if isinstance(entry.value, MappingNode):
            return entry.value
        self.error(entry.key_line, f"{where} must be a mapping, got {self.kind(entry.value)}")
        return None

    def section(
        self, entry: _Entry, where: str, keys: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, _Entry] | None:
        """A nested mapping with a fixed set of keys, or None (errors reported)."""
        node = self.mapping(entry, where)
        if node is None:
            return None
        found = self.entries(node, where, keys)
        missing = [key for key in required if key not in found]
        for key in missing:
            self.error(entry.key_line, f"{where} is missing '{key}'")
        return None if missing else found

    def option(self, found: dict[str, _Entry], key: str, where: str, rule: _Rule, default: T) -> T:
        """The value of an optional key checked against `rule`; `default` when absent or bad."""
        entry = found.get(key)
        if entry is None:
            return default
        value = self.scalar(entry.value)
        if rule.accepts(value):
            return float(value) if isinstance(default, float) else value  # type: ignore[return-value]
        got = self.kind(entry.value)
        self.error(line_of(entry.value), f"{where}: {key} must be {rule.text}, got {got}")
        return default

    def items(self, entry: _Entry, where: str, rule: _Rule) -> list[Any]:
        """The items of a list option that pass `rule` (each bad one reported on its line)."""
        if not isinstance(entry.value, SequenceNode) or not entry.value.value:
            got = "an empty list" if isinstance(entry.value, SequenceNode) else None
            got = got or self.kind(entry.value)
            self.error(entry.key_line, f"{where}: {entry.key} must be a list, got {got}")
            return []
        good = []
        for item in entry.value.value:
            value = self.scalar(item)
            if rule.accepts(value):
                good.append(value)
            else:
                got = self.kind(item)
                self.error(line_of(item), f"{where}: {entry.key} item {got} is not {rule.text}")
        return good

    def backend_ref(self, entry: _Entry, where: str, backends: Mapping[str, Backend]) -> str | None:
        value = self.scalar(entry.value)
        if not isinstance(value, str):
            got = self.kind(entry.value)
            self.error(entry.key_line, f"backend for {where} must be a backend name, got {got}")
            return None
        if value not in backends:
            if self.declared is not None and value not in self.declared:
                self.error(entry.key_line, f"unknown backend '{value}' for {where}")
            return None
        return value

    # -- the table -----------------------------------------------------------------------------

    def table(self, root: Node | None, sha256: str) -> RouteTable | None:
        if not isinstance(root, MappingNode):
            line = 1 if root is None else line_of(root)
            got = "an empty file" if root is None else self.kind(root)
            self.error(line, f"expected a mapping with {', '.join(TOP_KEYS)}, got {got}")
            return None
        top = self.entries(root, "the top-level mapping", TOP_KEYS)
        for key in TOP_KEYS[:3]:
            if key not in top:
                self.error(line_of(root), f"missing required key '{key}'")
        if "version" in top:
            self.version(top["version"])
        backends = self.backends(top["backends"]) if "backends" in top else {}
        default = (
            self.backend_ref(top["default"], "default", backends) if "default" in top else None
        )
        routes = self.resources(top["resources"], backends) if "resources" in top else {}
        if self.errors or default is None:
            return None
        return RouteTable(
            version=1,
            backends=MappingProxyType(backends),
            default=default,
            routes=MappingProxyType(routes),
            source=self.source,
            sha256=sha256,
        )

    def version(self, entry: _Entry) -> None:
        value = self.scalar(entry.value)
        if not (isinstance(value, int) and not isinstance(value, bool) and value == 1):
            self.error(entry.key_line, f"version must be 1, got {self.kind(entry.value)}")

    # -- backends ------------------------------------------------------------------------------

    def backends(self, entry: _Entry) -> dict[str, Backend]:
        node = self.mapping(entry, "backends")
        if node is None:
            return {}
        found = self.entries(node, "backends", None, what="backend")
        self.declared = set(found)
        if not found:
            self.error(entry.key_line, "backends must define at least one backend")
        backends: dict[str, Backend] = {}
        for name, item in found.items():
            backend = self.backend(name, item)
            if backend is not None:
                backends[name] = backend
        return backends

    def backend(self, name: str, entry: _Entry) -> Backend | None:
        where = f"backend '{name}'"
        if not NAME_RE.match(name):
            self.error(entry.key_line, f"invalid backend name '{name}' (letters, digits, _ and -)")
            return None
        found = self.section(entry, where, BACKEND_KEYS, ("url",))
        if found is None:
            return None
        origin = self.url(name, found["url"])
        connect = self.option(found, "connect_timeout", where, POSITIVE, 2.0)
        read = self.option(found, "read_timeout", where, POSITIVE, 30.0)
        limit = self.option(found, "max_connections", where, AT_LEAST_ONE, 100)
        tls = self.tls(name, found["tls"]) if "tls" in found else None
        if origin is None:
            return None
        url, scheme, host, port = origin
        if "tls" in found and scheme != "https":
            line = found["tls"].key_line
            self.error(line, f"{where}: tls needs an https:// url, got {url!r}")
            return None
        return Backend(name, url, scheme, host, port, connect, read, limit, tls)

    def tls(self, name: str, entry: _Entry) -> TlsOptions | None:
        """`tls: {ca_file: ca.pem, verify: true, server_name: api.internal, client_cert: c.pem,
        client_key: k.pem}` (every key optional) -> `TlsOptions`; files must load."""
        where = f"tls of backend '{name}'"
        found = self.section(entry, where, TLS_KEYS, ())
        if found is None:
            return None
        before = len(self.errors)
        files = {key: self.tls_file(found, key, where) for key in TLS_FILES}
        if "client_key" in found and "client_cert" not in found:
            self.error(found["client_key"].key_line, f"{where}: client_key needs client_cert")
        options = TlsOptions(
            ca_file=files["ca_file"],
            verify=self.option(found, "verify", where, FLAG, True),
            server_name=self.option(found, "server_name", where, HOST_NAME, None),
            client_cert=files["client_cert"],
            client_key=files["client_key"],
        )
        if len(self.errors) == before:
            self.tls_loads(found, where, options)
        return options

    def tls_file(self, found: dict[str, _Entry], key: str, where: str) -> str | None:
        """A readable file's path, a relative one joined to the routes file's directory."""
        value: str | None = self.option(found, key, where, FILE_PATH, None)
        if value is None:
            return None
        path = os.path.join(os.path.dirname(self.source), value)
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problem = f"cannot read {key} {path!r}: {exc.strerror or exc}"
            self.error(line_of(found[key].value), f"{where}: {problem}")
            return None
        return path

    def tls_loads(self, found: dict[str, _Entry], where: str, options: TlsOptions) -> None:
        """Readable files must also hold what they should (what `TlsOptions.context` loads)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if options.ca_file is not None:
            try:
                context.load_verify_locations(options.ca_file)
            except OSError:
                line = line_of(found["ca_file"].value)
                self.error(line, f"{where}: ca_file holds no PEM certificate")
        if options.client_cert is not None:
            try:
                context.load_cert_chain(
                    options.client_cert, options.client_key, password=no_password
                )
            except OSError:
                problem = "client_cert and client_key must be a PEM certificate and its key"
                line = line_of(found["client_cert"].value)
                self.error(line, f"{where}: {problem} (unencrypted)")

    def url(self, name: str, entry: _Entry) -> tuple[str, str, str, int] | None:
        variable = backend_env_var(name)
        override = self.environ.get(variable)
        value = override or self.scalar(entry.value)
        origin = parse_url(value) if isinstance(value, str) else None
        if origin is None:
            source = f"url (from {variable})" if override else "url"
            got = repr(value) if isinstance(value, str) else self.kind(entry.value)
            rule = "http(s)://host:port"
            self.error(
                line_of(entry.value), f"backend '{name}': {source} must be {rule}, got {got}"
            )
        return origin

    # -- resources -----------------------------------------------------------------------------

    def resources(self, entry: _Entry, backends: Mapping[str, Backend]) -> dict[str, Route]:
        if isinstance(entry.value, ScalarNode) and self.scalar(entry.value) is None:
            return {}
        node = self.mapping(entry, "resources")
        if node is None:
            return {}
        routes: dict[str, Route] = {}
        for name, item in self.entries(node, "resources", None, what="resource").items():
            route = self.route(name, item, backends)
            if route is not None:
                routes[name] = route
        return routes

    def route(self, name: str, entry: _Entry, backends: Mapping[str, Backend]) -> Route | None:
        where = f"resource '{name}'"
        if not RESOURCE_RE.match(name) or name == OTHER_RESOURCE:
            why = "is reserved for unlisted resources" if name == OTHER_RESOURCE else "is invalid"
            self.error(entry.key_line, f"resource name '{name}' {why}")
            return None
        if isinstance(entry.value, ScalarNode):
            backend = self.backend_ref(entry, where, backends)
            return None if backend is None else Route(name, backend)
        if isinstance(entry.value, SequenceNode):
            self.error(entry.key_line, f"{where} must be a backend name or a mapping, got a list")
            return None
        found = self.section(entry, where, ROUTE_KEYS, ("backend",))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        methods = self.methods(name, found["methods"], backends) if "methods" in found else {}
        canary = self.canary(name, found["canary"], backends) if "canary" in found else None
        shadow = self.shadow(name, found["shadow"], backends) if "shadow" in found else None
        fallback = self.fallback(name, found["fallback"], backends) if "fallback" in found else None
        guard = self.guard(name, found["guard"]) if "guard" in found else None
        if backend is None:
            return None
        return Route(name, backend, MappingProxyType(methods), canary, shadow, fallback, guard)

    def methods(self, name: str, entry: _Entry, backends: Mapping[str, Backend]) -> dict[str, str]:
        where = f"methods of resource '{name}'"
        node = self.mapping(entry, where)
        if node is None:
            return {}
        methods: dict[str, str] = {}
        for method, item in self.entries(node, where, None, what="method").items():
            if method not in METHODS:
                known = ", ".join(sorted(METHODS))
                self.error(item.key_line, f"unknown method '{method}' in {where} ({known})")
                continue
            backend = self.backend_ref(item, f"resource '{name}' method {method}", backends)
            if backend is not None:
                methods[method] = backend
        return methods

    def canary(self, name: str, entry: _Entry, backends: Mapping[str, Backend]) -> Canary | None:
        where = f"canary of resource '{name}'"
        found = self.section(entry, where, CANARY_KEYS, ("backend", "percent"))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        percent = self.option(found, "percent", where, PERCENT, 0.0)
        sticky: str | None = self.option(found, "sticky", where, STICKY, None)
        return None if backend is None else Canary(backend, percent, sticky)

    def shadow(self, name: str, entry: _Entry, backends: Mapping[str, Backend]) -> Shadow | None:
        where = f"shadow of resource '{name}'"
        found = self.section(entry, where, SHADOW_KEYS, ("backend",))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        percent = self.option(found, "percent", where, PERCENT, 100.0)
        ignore = self.items(found["ignore"], where, JSONPATH) if "ignore" in found else []
        return None if backend is None else Shadow(backend, percent, tuple(ignore))

    def fallback(
        self, name: str, entry: _Entry, backends: Mapping[str, Backend]
    ) -> Fallback | None:
        where = f"fallback of resource '{name}'"
        found = self.section(entry, where, FALLBACK_KEYS, ("backend", "on"))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        codes = self.items(found["on"], where, STATUS)
        return None if backend is None else Fallback(backend, frozenset(codes))

    def guard(self, name: str, entry: _Entry) -> Guard | None:
        where = f"guard of resource '{name}'"
        found = self.section(entry, where, GUARD_KEYS, ())
        if found is None:
            return None
        if "max_error_rate" not in found and "max_p99_ms" not in found:
            self.error(entry.key_line, f"{where} needs max_error_rate or max_p99_ms")
        return Guard(
            max_error_rate=self.option(found, "max_error_rate", where, FRACTION, None),
            max_p99_ms=self.option(found, "max_p99_ms", where, POSITIVE, None),
            min_requests=self.option(found, "min_requests", where, AT_LEAST_ONE, 20),
            window=self.option(found, "window", where, SECONDS, 60.0),
            dry_run=self.option(found, "dry_run", where, FLAG, False),
        )


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
