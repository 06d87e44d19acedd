"""What runs where: a pure description of every process of the local stack."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_SYSTEMS = ("reservations", "crm", "operations")

DEFAULT_PORTS = {
    "reservations": 5101,
    "crm": 5102,
    "operations": 5103,
    "legacy": 5000,
    "drf": 8000,
    "proxy": 8080,
    "proxy_admin": 8081,
}

PORT_ENV = {
    "reservations": "RESERVATIONS_PORT",
    "crm": "CRM_PORT",
    "operations": "OPERATIONS_PORT",
    "legacy": "LEGACY_PORT",
    "drf": "DRF_PORT",
    "proxy": "PROXY_PORT",
    "proxy_admin": "PROXY_ADMIN_PORT",
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
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class StackConfig:
    """Ports, hosts, data directory and worker count, read once from the environment.

    `host` is the address every service binds; `hosts` optionally names the host other
    services use to reach one (docker-compose's service names), defaulting to `host`.
    """

    ports: Mapping[str, int]
    host: str = "127.0.0.1"
    hosts: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path = Path("var")
    routes: Path = Path("routes.yaml")
    gateway_workers: int = 2
    python: str = sys.executable

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackConfig:
        ports = {
            key: int(environ.get(PORT_ENV[key], default)) for key, default in DEFAULT_PORTS.items()
        }
        return cls(
            ports=ports,
            host=environ.get("STACK_HOST", "127.0.0.1"),
            data_dir=Path(environ.get("STRANGLER_DATA_DIR", "var")),
            routes=Path(environ.get("STRANGLER_ROUTES", "routes.yaml")),
            gateway_workers=int(environ.get("GATEWAY_WORKERS", "2")),
        )

    def url(self, key: str) -> str:
        """Where other services reach `key` (its own name in docker-compose, else `host`)."""
        return f"http://{self.hosts.get(key, self.host)}:{self.ports[key]}"


def container_config(**hosts: str) -> StackConfig:
    """The stack as containers run it (docker-compose, Kubernetes): default ports, every service
    bound on all interfaces and reached by its own name (`hosts` overrides a name), data in
    /data, the routing table in /config.

    >>> container_config(proxy_admin="proxy-admin").url("proxy_admin")
    'http://proxy-admin:8081'
    """
    names = {key: key.partition("_")[0] for key in DEFAULT_PORTS}
    return StackConfig(
        ports=DEFAULT_PORTS,
        host="0.0.0.0",
        hosts={**names, **hosts},
        data_dir=Path("/data"),
        routes=Path("/config/routes.yaml"),
        python="python",
    )


def source_urls(config: StackConfig) -> dict[str, str]:
    """The environment a gateway needs to reach the source systems."""
    return {f"{name.upper()}_URL": config.url(name) for name in SOURCE_SYSTEMS}


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
    return Service(name, argv, config.ports[name], f"{config.url(name)}/healthz", host=config.host)


def gunicorn(config: StackConfig, name: str, app: str) -> Service:
    bind = f"{config.host}:{config.ports[name]}"
    argv = (
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
    return Service(
        name,
        argv,
        config.ports[name],
        f"{config.url(name)}/",
        env=source_urls(config),
        host=config.host,
    )


def proxy(config: StackConfig) -> Service:
    argv = (
        config.python,
        "-m",
        "proxy",
        "serve",
        "--routes",
        str(config.routes),
        "--host",
        config.host,
        "--port",
        str(config.ports["proxy"]),
        "--admin-host",
        config.host,
        "--admin-port",
        str(config.ports["proxy_admin"]),
    )
    env = {
        "STRANGLER_BACKEND_LEGACY_URL": config.url("legacy"),
        "STRANGLER_BACKEND_DRF_URL": config.url("drf"),
    }
    health = f"{config.url('proxy_admin')}/-/readyz"
    return Service("proxy", argv, config.ports["proxy"], health, env=env, host=config.host)


def services(config: StackConfig, *, with_proxy: bool = True) -> list[Service]:
    """Every process of the stack, in start order (dependencies first)."""
    result = [source_system(config, name) for name in SOURCE_SYSTEMS]
    result.append(gunicorn(config, "legacy", "legacy_flask:create_app()"))
    result.append(gunicorn(config, "drf", "drf_app.wsgi:application"))
    if with_proxy:
        result.append(proxy(config))
    return result
