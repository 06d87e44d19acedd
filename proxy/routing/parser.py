"""The one reader of routes.yaml: its text in, an immutable `RouteTable` out, or `RoutesError`
carrying every problem found as `file:line: message`, in line order.

    >>> parse_table("version: 1\\nbackends: {a: {url: 'http://h:1'}}\\ndefault: a\\n").default
    'a'
    >>> parse_table("version: 1\\nbackends: {a: {url: 'http://h:1', read_timeout: 0}}\\n"
    ...             "default: b\\n")   # doctest: +SKIP
    RoutesError: routes.yaml:2: backend 'a': read_timeout must be a number > 0, got 0
    routes.yaml:3: unknown backend 'b' for default

`load_table` reads the file (with its size cap) first. `_Parser` walks the nodes section by
section with `proxy.routing.nodes`, checks each value against the schema of
`proxy.routing.rules`, and builds the table of `proxy.routing.model`.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy.routing.clients import read_clients
from proxy.routing.groups import read_groups
from proxy.routing.model import (
    METHODS,
    OTHER_RESOURCE,
    Backend,
    Canary,
    Fallback,
    Guard,
    Route,
    RoutesError,
    RouteTable,
    Shadow,
    TlsOptions,
    no_password,
)
from proxy.routing.nodes import Entry, NodeReader, compose_nodes, line_of
from proxy.routing.plans import check_in_flight, check_route, read_rollout
from proxy.routing.rules import (
    AT_LEAST_ONE,
    BACKEND_KEYS,
    CANARY_KEYS,
    FALLBACK_KEYS,
    FILE_PATH,
    FLAG,
    FRACTION,
    GUARD_KEYS,
    HOST_NAME,
    JSONPATH,
    NAME_RE,
    PERCENT,
    POSITIVE,
    RESOURCE_RE,
    ROUTE_KEYS,
    SECONDS,
    SHADOW_KEYS,
    STATUS,
    STICKY,
    TLS_FILES,
    TLS_KEYS,
    TOP_KEYS,
    WRITES,
    backend_env_var,
    parse_url,
)


def load_table(
    path: Path, environ: Mapping[str, str] | None = None, max_bytes: int | None = None
) -> RouteTable:
    """Read and parse a routes file; errors name the file as given.

    A file over `max_bytes` (`Settings.max_routes_bytes`) is refused before it is parsed:
    `routes.yaml:1: file is over the 1048576-byte limit (STRANGLER_MAX_ROUTES_BYTES)`.
    Blocking and slow for a big table: a running proxy calls it in a thread
    (`proxy.routing.reload`).
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
    root = compose_nodes(text, source)
    parser = _Parser(source, os.environ if environ is None else environ)
    table = parser.table(root, sha256)
    if parser.errors or table is None:
        raise RoutesError(parser.messages())
    return table


class _Parser(NodeReader):
    """Walks routes.yaml's nodes section by section, building the table."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        super().__init__(source)
        self.environ = environ
        self.declared: set[str] | None = None  # backend names, once that section is readable

    def backend_ref(self, entry: Entry, where: str, backends: Mapping[str, Backend]) -> str | None:
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
            self.error(line, f"expected a mapping with {', '.join(TOP_KEYS[:4])}, got {got}")
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
        max_in_flight = check_in_flight(self, top.get("max_in_flight"), routes)
        groups = read_groups(self, top.get("groups"), top.get("resources"))
        if self.errors or default is None:
            return None
        return RouteTable(
            version=1,
            backends=MappingProxyType(backends),
            default=default,
            routes=MappingProxyType(routes),
            source=self.source,
            sha256=sha256,
            max_in_flight=max_in_flight,
            groups=MappingProxyType(groups),
        )

    def version(self, entry: Entry) -> None:
        value = self.scalar(entry.value)
        if not (isinstance(value, int) and not isinstance(value, bool) and value == 1):
            self.error(entry.key_line, f"version must be 1, got {self.kind(entry.value)}")

    # -- backends ------------------------------------------------------------------------------

    def backends(self, entry: Entry) -> dict[str, Backend]:
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

    def backend(self, name: str, entry: Entry) -> Backend | None:
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

    def tls(self, name: str, entry: Entry) -> TlsOptions | None:
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

    def tls_file(self, found: dict[str, Entry], key: str, where: str) -> str | None:
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

    def tls_loads(self, found: dict[str, Entry], where: str, options: TlsOptions) -> None:
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

    def url(self, name: str, entry: Entry) -> tuple[str, str, str, int] | None:
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

    def resources(self, entry: Entry, backends: Mapping[str, Backend]) -> dict[str, Route]:
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

    def route(self, name: str, entry: Entry, backends: Mapping[str, Backend]) -> Route | None:
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
        plan = read_rollout(self, name, found["rollout"], backends) if "rollout" in found else None
        clients = read_clients(self, name, found.get("clients"), self.backend_ref, backends)
        if backend is None:
            return None
        route = Route(name, backend, MappingProxyType(methods), canary, shadow, fallback, guard)
        route = replace(route, rollout=plan, clients=clients)
        check_route(self, route, entry.key_line)
        return route

    def methods(self, name: str, entry: Entry, backends: Mapping[str, Backend]) -> dict[str, str]:
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

    def canary(self, name: str, entry: Entry, backends: Mapping[str, Backend]) -> Canary | None:
        where = f"canary of resource '{name}'"
        found = self.section(entry, where, CANARY_KEYS, ("backend", "percent"))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        percent = self.option(found, "percent", where, PERCENT, 0.0)
        sticky: str | None = self.option(found, "sticky", where, STICKY, None)
        return None if backend is None else Canary(backend, percent, sticky)

    def shadow(self, name: str, entry: Entry, backends: Mapping[str, Backend]) -> Shadow | None:
        where = f"shadow of resource '{name}'"
        found = self.section(entry, where, SHADOW_KEYS, ("backend",))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        percent = self.option(found, "percent", where, PERCENT, 100.0)
        ignore = self.items(found["ignore"], where, JSONPATH) if "ignore" in found else []
        learn = self.option(found, "learn_noise", where, FRACTION, 0.0)
        after = self.option(found, "noise_after", where, AT_LEAST_ONE, 3)
        writes = self.option(found, "writes", where, WRITES, "off") == "dry-run"
        if backend is None:
            return None
        return Shadow(backend, percent, tuple(ignore), learn, after, writes)

    def fallback(self, name: str, entry: Entry, backends: Mapping[str, Backend]) -> Fallback | None:
        where = f"fallback of resource '{name}'"
        found = self.section(entry, where, FALLBACK_KEYS, ("backend", "on"))
        if found is None:
            return None
        backend = self.backend_ref(found["backend"], where, backends)
        codes = self.items(found["on"], where, STATUS)
        return None if backend is None else Fallback(backend, frozenset(codes))

    def guard(self, name: str, entry: Entry) -> Guard | None:
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
