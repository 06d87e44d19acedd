"""Process settings: built once, from command-line flags and the environment, then frozen."""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Settings:
    routes: Path = Path("routes.yaml")
    host: str = "127.0.0.1"
    port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    workers: int = 1
    admin_token: str | None = field(default=None, repr=False)  # recorded as ADMIN_NAME
    # Named admin tokens, `(name, token)`: STRANGLER_ADMIN_TOKENS ("alice:tok1,bob:tok2") and the
    # lines of STRANGLER_ADMIN_TOKENS_FILE; a change made with one is recorded as its name.
    admin_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    tester_token: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    drain_seconds: float = 10.0
    keepalive_timeout: float = 75.0  # an idle client connection is closed after this long
    header_timeout: float = 30.0  # a request head not complete this long after it began: 408
    body_timeout: float = 60.0  # no request body byte from the client for this long: 408
    tunnel_idle_timeout: float = 300.0  # an upgraded connection (WebSocket) idle this long: cut
    max_request_line: int = 8190
    max_header_size: int = 8190  # one header field line
    max_headers_total: int = 65536  # the whole header block
    max_body_size: int = 4 * 1024**3
    max_response_head: int = 64 * 1024  # a backend's status line and headers: over it, 502
    access_log: bool = True
    fallback_body_cap: int = 1024 * 1024  # request bodies kept for a fallback replay up to this
    max_routes_bytes: int = 1024 * 1024  # a bigger routes file is refused, never parsed
    # Several workers: where they keep their metric values (PROMETHEUS_MULTIPROC_DIR) and share
    # snapshots (proxy.observe.sharing). None: the proxy runs as one process.
    shared_directory: Path | None = None
    # The fleet (proxy.routing.store): the table in etcd instead of `routes` ("etcd://h:2379/p",
    # --store or STRANGLER_STORE), the last applied text cached on disk (--store-cache), and this
    # replica's id in the store (STRANGLER_REPLICA, else hostname-pid).
    store: str | None = None
    store_cache: Path | None = None
    replica_id: str = field(default_factory=lambda: default_replica_id(os.environ))
    # A resource on the new stack without a fallback is `retired` once no fallback debt was
    # recorded for this long (proxy.migration.stage); STRANGLER_RETIRE_AFTER.
    retire_after: float = 86400.0

    # How often the rollout autopilot judges the running plans (proxy.control.autopilot);
    # STRANGLER_ROLLOUT_EVALUATE_EVERY.
    rollout_evaluate_every: float = 5.0

    # The secret that signs dry-run write copies (proxy.dryrun); STRANGLER_SHADOW_SECRET. None:
    # `shadow: {writes: dry-run}` copies no write.
    shadow_secret: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **flags: object) -> Settings:
        """Flags given on the command line win; the environment fills in the rest.

        >>> Settings.from_env({"STRANGLER_ADMIN_TOKEN": "s3cret"}, port=9000).admin_token
        's3cret'
        """
        values: dict[str, object] = {
            "admin_token": environ.get("STRANGLER_ADMIN_TOKEN") or None,
            "admin_tokens": admin_tokens(environ),
            "tester_token": environ.get("STRANGLER_TESTER_TOKEN") or None,
            "trusted_proxies": parse_networks(environ.get("STRANGLER_TRUSTED_PROXIES", "")),
            "access_log": environ.get("STRANGLER_ACCESS_LOG", "1") not in ("0", "false", "off"),
            "shared_directory": shared_directory(environ),
            "store": environ.get("STRANGLER_STORE") or None,
            "replica_id": default_replica_id(environ),
            "shadow_secret": environ.get("STRANGLER_SHADOW_SECRET") or None,
        }
        if "STRANGLER_DRAIN_SECONDS" in environ:
            values["drain_seconds"] = float(environ["STRANGLER_DRAIN_SECONDS"])
        if "STRANGLER_HEADER_TIMEOUT" in environ:
            values["header_timeout"] = float(environ["STRANGLER_HEADER_TIMEOUT"])
        if "STRANGLER_BODY_TIMEOUT" in environ:
            values["body_timeout"] = float(environ["STRANGLER_BODY_TIMEOUT"])
        if "STRANGLER_TUNNEL_IDLE_TIMEOUT" in environ:
            values["tunnel_idle_timeout"] = float(environ["STRANGLER_TUNNEL_IDLE_TIMEOUT"])
        if "STRANGLER_MAX_RESPONSE_HEAD" in environ:
            values["max_response_head"] = int(environ["STRANGLER_MAX_RESPONSE_HEAD"])
        if "STRANGLER_MAX_BODY_SIZE" in environ:
            values["max_body_size"] = int(environ["STRANGLER_MAX_BODY_SIZE"])
        if "STRANGLER_FALLBACK_BODY_CAP" in environ:
            values["fallback_body_cap"] = int(environ["STRANGLER_FALLBACK_BODY_CAP"])
        if "STRANGLER_RETIRE_AFTER" in environ:
            values["retire_after"] = float(environ["STRANGLER_RETIRE_AFTER"])
        if "STRANGLER_ROLLOUT_EVALUATE_EVERY" in environ:
            values["rollout_evaluate_every"] = float(environ["STRANGLER_ROLLOUT_EVALUATE_EVERY"])
        if "STRANGLER_MAX_ROUTES_BYTES" in environ:
            values["max_routes_bytes"] = int(environ["STRANGLER_MAX_ROUTES_BYTES"])
        values.update({key: value for key, value in flags.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_json(self) -> str:
        """The settings as JSON, for a worker process to rebuild them with `from_json`."""
        values = asdict(self)
        values["routes"] = str(self.routes)
        values["trusted_proxies"] = [str(network) for network in self.trusted_proxies]
        if self.shared_directory is not None:
            values["shared_directory"] = str(self.shared_directory)
        if self.store_cache is not None:
            values["store_cache"] = str(self.store_cache)
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        values = json.loads(text)
        values["routes"] = Path(values["routes"])
        values["trusted_proxies"] = parse_networks(",".join(values["trusted_proxies"]))
        values["admin_tokens"] = tuple(tuple(pair) for pair in values.get("admin_tokens", ()))
        if values.get("shared_directory") is not None:
            values["shared_directory"] = Path(values["shared_directory"])
        if values.get("store_cache") is not None:
            values["store_cache"] = Path(values["store_cache"])
        return cls(**values)

    def named_tokens(self) -> tuple[tuple[str, str], ...]:
        """Every admin token with the name a change made with it is recorded as."""
        unnamed = ((ADMIN_NAME, self.admin_token),) if self.admin_token else ()
        return self.admin_tokens + unnamed


# -- who makes a change ----------------------------------------------------------------------

ADMIN_NAME = "admin"  # the user of a change made with the unnamed STRANGLER_ADMIN_TOKEN
TOKEN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*\Z")
GIT_TIMEOUT = 2.0


class SettingsError(ValueError):
    """A setting of the environment cannot be used; the message never quotes a secret."""


def admin_tokens(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The named admin tokens: STRANGLER_ADMIN_TOKENS, then STRANGLER_ADMIN_TOKENS_FILE (one
    `name:token` a line; blank lines and lines starting with `#` skipped). A name or a token
    given twice is refused (a token must name one user).

    >>> admin_tokens({"STRANGLER_ADMIN_TOKENS": "alice:tok1, bob:tok2"})
    (('alice', 'tok1'), ('bob', 'tok2'))
    """
    found = [
        _named_token(part, "STRANGLER_ADMIN_TOKENS")
        for part in environ.get("STRANGLER_ADMIN_TOKENS", "").split(",")
        if part.strip()
    ]
    path = environ.get("STRANGLER_ADMIN_TOKENS_FILE")
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SettingsError(f"STRANGLER_ADMIN_TOKENS_FILE: cannot read {path}: {why}") from exc
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(_named_token(line, f"{path}:{number}"))
    names = [name for name, _ in found]
    for name in names:
        if names.count(name) > 1:
            raise SettingsError(f"admin tokens: the name '{name}' is given twice")
    tokens = [token for _, token in found]
    for name, token in found:
        if tokens.count(token) > 1:
            raise SettingsError(f"admin tokens: the token of '{name}' is given to another name too")
    return tuple(found)


def _named_token(text: str, where: str) -> tuple[str, str]:
    """`"alice:tok1"` -> `("alice", "tok1")`; errors say where, never what the text held."""
    name, colon, token = text.strip().partition(":")
    name, token = name.strip(), token.strip()
    if not colon or not name or not token:
        raise SettingsError(f"{where}: expected name:token")
    if not TOKEN_NAME_RE.match(name):
        raise SettingsError(f"{where}: invalid name (letters, digits and . _ @ + -)")
    return name, token


def command_user(
    given: str | None = None,
    environ: Mapping[str, str] = os.environ,
    *,
    login: Callable[[], str] = getpass.getuser,
) -> str:
    """Who a change from the command line is recorded as: `--user`, else STRANGLER_USER, else
    the login name, else `git config user.email`, else "unknown".

    >>> command_user("ana"), command_user(None, {"STRANGLER_USER": "bob"})
    ('ana', 'bob')
    """
    for name in (given, environ.get("STRANGLER_USER")):
        if name and name.strip():
            return name.strip()
    try:
        name = login()
    except (OSError, KeyError, ImportError):  # no login name in the environment, no passwd entry
        name = ""
    return name or git_email(environ) or "unknown"


def git_email(environ: Mapping[str, str]) -> str | None:
    """`git config user.email` (run with `environ`, for GIT_CONFIG_GLOBAL and HOME), or None."""
    import subprocess  # here: only an author without a login name runs git; every command would pay

    try:
        done = subprocess.run(
            ["git", "config", "user.email"],
            env=dict(environ), capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    email = done.stdout.strip()
    return email if done.returncode == 0 and email else None


def default_replica_id(environ: Mapping[str, str]) -> str:
    """This replica's id in the store: STRANGLER_REPLICA, else `hostname-pid`."""
    return environ.get("STRANGLER_REPLICA") or f"{socket.gethostname()}-{os.getpid()}"


def shared_directory(environ: Mapping[str, str]) -> Path | None:
    """Where workers share metric values and snapshots (PROMETHEUS_MULTIPROC_DIR); None when
    the proxy runs as one process."""
    directory = environ.get(MULTIPROC_ENV)
    return Path(directory) if directory else None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"127.0.0.1, 10.0.0.0/8"` -> the networks whose X-Forwarded-* headers are trusted."""
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


def is_trusted(peer: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether `peer` (an IP address as text) is in one of `networks`."""
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in networks)
