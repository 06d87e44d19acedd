"""What runs where: a pure description of every process of the local stack."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from proxy.dryrun import SECRET_VARIABLE

SOURCE_SYSTEMS = ("reservations", "crm", "operations")
# API clients and their OAuth 2 tokens (source_systems.auth): the gateways introspect tokens
# there. It holds no API data and takes no dry runs, so it is not among SOURCE_SYSTEMS.
AUTH_SYSTEM = "auth"

DEFAULT_PORTS = {
    "reservations": 5101,
    "crm": 5102,
    "operations": 5103,
    "auth": 5104,
    "legacy": 5000,
    "drf": 8000,
    "proxy": 8080,
    "proxy_admin": 8081,
}

# `make fleet` adds etcd and two more proxy replicas (the first one keeps proxy/proxy_admin).
FLEET_REPLICAS = 3
FLEET_PORTS = {
    "etcd": 2379,
    "etcd_peer": 2380,
    "proxy_2": 8180,
    "proxy_admin_2": 8181,
    "proxy_3": 8280,
    "proxy_admin_3": 8281,
}
STORE_PREFIX = "/strangler"

PORT_ENV = {
    "reservations": "RESERVATIONS_PORT",
    "crm": "CRM_PORT",
    "operations": "OPERATIONS_PORT",
    "auth": "AUTH_PORT",
    "legacy": "LEGACY_PORT",
    "drf": "DRF_PORT",
    "proxy": "PROXY_PORT",
    "proxy_admin": "PROXY_ADMIN_PORT",
    "etcd": "ETCD_PORT",
    "etcd_peer": "ETCD_PEER_PORT",
    "proxy_2": "PROXY_2_PORT",
    "proxy_admin_2": "PROXY_ADMIN_2_PORT",
    "proxy_3": "PROXY_3_PORT",
    "proxy_admin_3": "PROXY_ADMIN_3_PORT",
}


# gunicorn's access log line; the request id lets a test (or an SRE) tell which gateway
# served a request that came through the proxy.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}i)s'


@dataclass(frozen=True)
class Service:
    """One process of the stack: its command line, its extra environment, where it answers."""

    name: str
    argv: tuple[str, ...]
    port: int
    health_url: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold a secret
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class StackConfig:
    """Ports, hosts, data directory and worker count, read once from the environment.

    `host` is the address every service binds; `hosts` optionally names the host other
    services use to reach one (docker-compose's service names), defaulting to `host`.
    `store` (an etcd URL, see `fleet`) puts the proxies on the store instead of `routes`.
    `shadow_secret`, when set, goes to the proxy, the gateways and the source systems as
    STRANGLER_SHADOW_SECRET, the key of dry-run writes (`proxy.dryrun`); unset, they inherit it
    from the environment they are started in, or have none (and refuse every dry run).
    `control_sockets`: every process on one host (`make run`, the tests), so each gunicorn
    gets a control socket of its own in `data_dir` (by default both would take the same
    ~/.gunicorn/gunicorn.ctl); containers have a filesystem each and keep gunicorn's default.
    """

    ports: Mapping[str, int]
    host: str = "127.0.0.1"
    hosts: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path = Path("var")
    routes: Path = Path("routes.yaml")
    gateway_workers: int = 2
    python: str = sys.executable
    store: str | None = None
    shadow_secret: str | None = field(default=None, repr=False)
    control_sockets: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackConfig:
        ports = {
            key: int(environ.get(PORT_ENV[key], default))
            for key, default in {**DEFAULT_PORTS, **FLEET_PORTS}.items()
        }
        return cls(
            ports=ports,
            host=environ.get("STACK_HOST", "127.0.0.1"),
            data_dir=Path(environ.get("STRANGLER_DATA_DIR", "var")),
            routes=Path(environ.get("STRANGLER_ROUTES", "routes.yaml")),
            gateway_workers=int(environ.get("GATEWAY_WORKERS", "2")),
            shadow_secret=environ.get(SECRET_VARIABLE) or None,
        )

    def url(self, key: str) -> str:
        """Where other services reach `key` (its own name in docker-compose, else `host`)."""
        return f"http://{self.hosts.get(key, self.host)}:{self.ports[key]}"

    def fleet(self) -> StackConfig:
        """This configuration with the proxies on the stack's own etcd (`make fleet`).

        >>> StackConfig.from_env({}).fleet().store
        'etcd://127.0.0.1:2379/strangler'
        """
        address = self.url("etcd").removeprefix("http://")
        return replace(self, store=f"etcd://{address}{STORE_PREFIX}")


def container_config(**hosts: str) -> StackConfig:
    """The stack as containers run it (docker-compose, Kubernetes): default ports, every service
    bound on all interfaces and reached by its own name (`hosts` overrides a name), data in
    /data, the routing table in /config.

    >>> container_config(proxy_admin="proxy-admin").url("proxy_admin")
    'http://proxy-admin:8081'
    """
    names = {key: key.partition("_")[0] for key in {**DEFAULT_PORTS, **FLEET_PORTS}}
    for number in range(2, FLEET_REPLICAS + 1):
        names[f"proxy_{number}"] = names[f"proxy_admin_{number}"] = replica_name(number)
    return StackConfig(
        ports={**DEFAULT_PORTS, **FLEET_PORTS},
        host="0.0.0.0",
        hosts={**names, **hosts},
        data_dir=Path("/data"),
        routes=Path("/config/routes.yaml"),
        python="python",
        control_sockets=False,
    )


def source_urls(config: StackConfig) -> dict[str, str]:
    """The environment a gateway needs to reach the source systems (and the auth system)."""
    return {f"{name.upper()}_URL": config.url(name) for name in (*SOURCE_SYSTEMS, AUTH_SYSTEM)}


def shadow_env(config: StackConfig) -> dict[str, str]:
    """The dry-run key every party shares, when the configuration holds one."""
    return {} if config.shadow_secret is None else {SECRET_VARIABLE: config.shadow_secret}


def source_system(config: StackConfig, name: str) -> Service:
    db = config.data_dir / f"{name}.sqlite3"
    argv = (
        config.python,
        "-m",
        "source_systems",
        name,
        "--host",
        config.host,
        "--port",
        str(config.ports[name]),
        "--db",
        str(db),
    )
    health = f"{config.url(name)}/healthz"
    env = {} if name == AUTH_SYSTEM else shadow_env(config)  # auth never handles a dry run
    return Service(name, argv, config.ports[name], health, env=env, host=config.host)


def gunicorn(config: StackConfig, name: str, app: str) -> Service:
    bind = f"{config.host}:{config.ports[name]}"
    argv: tuple[str, ...] = (
        config.python,
        "-m",
        "gunicorn",
        app,
        "--bind",
        bind,
        "--workers",
        str(config.gateway_workers),
        "--access-logfile",
        "-",
        "--access-logformat",
        ACCESS_LOG_FORMAT,
    )
    if config.control_sockets:
        argv += ("--control-socket", str(config.data_dir / f"{name}.gunicorn.ctl"))
    return Service(
        name,
        argv,
        config.ports[name],
        f"{config.url(name)}/",
        env={**source_urls(config), **shadow_env(config)},
        host=config.host,
    )


def replica_name(number: int) -> str:
    """The name of the fleet's proxy replica `number` (from 1): proxy, proxy-2, proxy-3."""
    return "proxy" if number == 1 else f"proxy-{number}"


def replica_ports(number: int) -> tuple[str, str]:
    """The port keys of proxy replica `number`: ("proxy", "proxy_admin"), ("proxy_2", ...)."""
    suffix = "" if number == 1 else f"_{number}"
    return f"proxy{suffix}", f"proxy_admin{suffix}"


def proxy(config: StackConfig, number: int = 1) -> Service:
    """The proxy; with `config.store`, replica `number` of the fleet, on the store."""
    name = replica_name(number)
    public, admin_key = replica_ports(number)
    port, admin = config.ports[public], config.ports[admin_key]
    if config.store is None:
        table: tuple[str, ...] = ("--routes", str(config.routes))
    else:
        cache = config.data_dir / f"{name}.routes-cache.yaml"
        table = ("--store", config.store, "--store-cache", str(cache))
    argv = (
        config.python,
        "-m",
        "proxy",
        "serve",
        *table,
        "--host",
        config.host,
        "--port",
        str(port),
        "--admin-host",
        config.host,
        "--admin-port",
        str(admin),
    )
    env = {
        "STRANGLER_BACKEND_LEGACY_URL": config.url("legacy"),
        "STRANGLER_BACKEND_DRF_URL": config.url("drf"),
        **shadow_env(config),
    }
    health = f"{config.url(admin_key)}/-/readyz"
    return Service(name, argv, port, health, env=env, host=config.host)


def etcd(config: StackConfig) -> Service:
    """A one-member etcd (Debian's etcd-server) holding the fleet's table, data in data_dir."""
    client, peer = config.url("etcd"), config.url("etcd_peer")
    listen_client = f"http://{config.host}:{config.ports['etcd']}"
    listen_peer = f"http://{config.host}:{config.ports['etcd_peer']}"
    argv = (
        "etcd",
        "--name",
        "strangler",
        "--data-dir",
        str(config.data_dir / "etcd"),
        "--listen-client-urls",
        listen_client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        listen_peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"strangler={peer}",
    )
    return Service("etcd", argv, config.ports["etcd"], f"{client}/health", host=config.host)


def seed(config: StackConfig) -> tuple[str, ...]:
    """The one-off command that writes routes.yaml into an empty store (never over a table)."""
    assert config.store is not None, "seed: the configuration has no store"
    return (config.python, "-m", "stack.seed", str(config.routes), "--store", config.store)


def services(config: StackConfig, *, with_proxy: bool = True) -> list[Service]:
    """Every process of the stack, in start order (dependencies first)."""
    result = [source_system(config, name) for name in (*SOURCE_SYSTEMS, AUTH_SYSTEM)]
    result.append(gunicorn(config, "legacy", "legacy_flask:create_app()"))
    result.append(gunicorn(config, "drf", "drf_app.wsgi:application"))
    if with_proxy:
        result.append(proxy(config))
    return result


def fleet_services(config: StackConfig) -> list[Service]:
    """`make fleet`: the stack without its proxy, etcd, then FLEET_REPLICAS proxies on it.
    `seed(config)` must run between etcd and the proxies."""
    result = services(config, with_proxy=False)
    result.append(etcd(config))
    result += [proxy(config, number) for number in range(1, FLEET_REPLICAS + 1)]
    return result


def start_waves(listed: list[Service]) -> list[list[Service]]:
    """`listed` (in start order) in the groups that start together, each once the one before
    answers: the source systems, the auth system and etcd, which need nobody; then the gateways,
    which reach them; then the proxies, in front of the gateways.

    >>> config = StackConfig.from_env({})
    >>> [[service.name for service in wave] for wave in start_waves(services(config))]
    [['reservations', 'crm', 'operations', 'auth'], ['legacy', 'drf'], ['proxy']]
    """
    gateways = ("legacy", "drf")
    proxies = {replica_name(number) for number in range(1, FLEET_REPLICAS + 1)}

    def wave(service: Service) -> int:
        return 2 if service.name in proxies else 1 if service.name in gateways else 0

    waves: list[list[Service]] = [[], [], []]
    for service in listed:
        waves[wave(service)].append(service)
    return [group for group in waves if group]
