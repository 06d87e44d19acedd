"""The stack description is pure: ports and URLs come from the environment, nothing else."""

from __future__ import annotations

from pathlib import Path

from stack.services import (
    DEFAULT_PORTS,
    StackConfig,
    container_config,
    fleet_services,
    seed,
    services,
    source_urls,
    start_waves,
)


def test_defaults_are_the_documented_ports() -> None:
    config = StackConfig.from_env({})
    assert config.ports == {
        "reservations": 5101,
        "crm": 5102,
        "operations": 5103,
        "auth": 5104,
        "legacy": 5000,
        "drf": 8000,
        "proxy": 8080,
        "proxy_admin": 8081,
        "etcd": 2379,
        "etcd_peer": 2380,
        "proxy_2": 8180,
        "proxy_admin_2": 8181,
        "proxy_3": 8280,
        "proxy_admin_3": 8281,
    }
    assert [s.name for s in services(config)] == [
        "reservations",
        "crm",
        "operations",
        "auth",
        "legacy",
        "drf",
        "proxy",
    ]


def test_every_port_is_overridable_from_the_environment() -> None:
    config = StackConfig.from_env({"LEGACY_PORT": "6000", "CRM_PORT": "6102"})
    assert config.ports["legacy"] == 6000
    assert config.ports["crm"] == 6102
    assert source_urls(config)["CRM_URL"] == "http://127.0.0.1:6102"
    legacy = next(s for s in services(config) if s.name == "legacy")
    assert "127.0.0.1:6000" in legacy.argv
    assert legacy.env["CRM_URL"] == "http://127.0.0.1:6102"


def test_hosts_name_where_others_reach_a_service() -> None:
    config = StackConfig(ports=DEFAULT_PORTS, host="0.0.0.0", hosts={"crm": "crm"})
    assert config.url("crm") == "http://crm:5102"
    assert config.url("operations") == "http://0.0.0.0:5103"


def test_proxy_is_pointed_at_both_gateways_and_the_routes_file() -> None:
    config = StackConfig.from_env({"STRANGLER_ROUTES": "/etc/strangler/routes.yaml"})
    proxy = services(config)[-1]
    assert proxy.env == {
        "STRANGLER_BACKEND_LEGACY_URL": "http://127.0.0.1:5000",
        "STRANGLER_BACKEND_DRF_URL": "http://127.0.0.1:8000",
    }
    assert proxy.argv[proxy.argv.index("--routes") + 1] == "/etc/strangler/routes.yaml"
    assert proxy.health_url == "http://127.0.0.1:8081/-/readyz"
    assert config.data_dir == Path("var")


def test_the_fleet_is_the_stack_with_etcd_and_three_replicas_on_the_store() -> None:
    config = StackConfig.from_env({"STRANGLER_DATA_DIR": "/srv/var", "ETCD_PORT": "3379"}).fleet()
    store = "etcd://127.0.0.1:3379/strangler"
    assert config.store == store
    fleet = fleet_services(config)
    assert [s.name for s in fleet] == [
        "reservations",
        "crm",
        "operations",
        "auth",
        "legacy",
        "drf",
        "etcd",
        "proxy",
        "proxy-2",
        "proxy-3",
    ]
    replicas = fleet[-3:]
    assert [(s.port, s.health_url) for s in replicas] == [
        (8080, "http://127.0.0.1:8081/-/readyz"),
        (8180, "http://127.0.0.1:8181/-/readyz"),
        (8280, "http://127.0.0.1:8281/-/readyz"),
    ]
    assert replicas[1].argv[3:] == (
        "serve",
        "--store",
        store,
        "--store-cache",
        "/srv/var/proxy-2.routes-cache.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        "8180",
        "--admin-host",
        "127.0.0.1",
        "--admin-port",
        "8181",
    )
    assert all("--routes" not in s.argv for s in replicas)
    assert seed(config)[1:] == ("-m", "stack.seed", "routes.yaml", "--store", store)


def test_the_stack_starts_in_waves_dependencies_first() -> None:
    """What `make run` and `make fleet` start together: every source system, auth and etcd; then
    both gateways; then the proxies (a fleet's store is seeded before them)."""
    config = StackConfig.from_env({})
    names = [[s.name for s in wave] for wave in start_waves(services(config))]
    assert names == [["reservations", "crm", "operations", "auth"], ["legacy", "drf"], ["proxy"]]
    names = [[s.name for s in wave] for wave in start_waves(fleet_services(config.fleet()))]
    assert names == [
        ["reservations", "crm", "operations", "auth", "etcd"],
        ["legacy", "drf"],
        ["proxy", "proxy-2", "proxy-3"],
    ]


def test_etcd_keeps_its_data_in_the_data_directory_and_answers_health() -> None:
    etcd = fleet_services(StackConfig.from_env({"STRANGLER_DATA_DIR": "/srv/var"}).fleet())[6]
    assert etcd.argv == (
        "etcd",
        "--name",
        "strangler",
        "--data-dir",
        "/srv/var/etcd",
        "--listen-client-urls",
        "http://127.0.0.1:2379",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "strangler=http://127.0.0.1:2380",
    )
    assert etcd.health_url == "http://127.0.0.1:2379/health"


def test_in_containers_etcd_listens_everywhere_and_is_reached_by_name() -> None:
    config = container_config().fleet()
    assert config.store == "etcd://etcd:2379/strangler"
    etcd = fleet_services(config)[6]
    after = {etcd.argv[i]: etcd.argv[i + 1] for i in range(1, len(etcd.argv) - 1, 2)}
    assert after["--listen-client-urls"] == "http://0.0.0.0:2379"
    assert after["--advertise-client-urls"] == "http://etcd:2379"
    assert after["--initial-cluster"] == "strangler=http://etcd:2380"


def test_the_shadow_secret_goes_to_every_process_of_ours_and_nowhere_else() -> None:
    config = StackConfig.from_env({"STRANGLER_SHADOW_SECRET": "k3y"}).fleet()
    secrets = {s.name: s.env.get("STRANGLER_SHADOW_SECRET") for s in fleet_services(config)}
    assert secrets == {
        "reservations": "k3y",
        "crm": "k3y",
        "operations": "k3y",
        "auth": None,  # it never handles a dry run
        "legacy": "k3y",
        "drf": "k3y",
        "etcd": None,
        "proxy": "k3y",
        "proxy-2": "k3y",
        "proxy-3": "k3y",
    }
    assert "k3y" not in repr(config) + repr(fleet_services(config))


def test_without_a_shadow_secret_no_process_is_given_one() -> None:
    for empty in ({}, {"STRANGLER_SHADOW_SECRET": ""}):
        config = StackConfig.from_env(empty)
        assert config.shadow_secret is None
        assert all("STRANGLER_SHADOW_SECRET" not in s.env for s in services(config))


def test_each_gunicorn_has_a_control_socket_of_its_own_in_the_data_directory() -> None:
    config = StackConfig.from_env({"STRANGLER_DATA_DIR": "/srv/var"})
    sockets = {
        s.name: s.argv[s.argv.index("--control-socket") + 1]
        for s in services(config)
        if "--control-socket" in s.argv
    }
    assert sockets == {"legacy": "/srv/var/legacy.gunicorn.ctl", "drf": "/srv/var/drf.gunicorn.ctl"}


def test_in_containers_gunicorn_keeps_its_default_control_socket() -> None:
    assert all("--control-socket" not in s.argv for s in services(container_config()))


def test_the_auth_system_runs_like_a_source_system_and_the_gateways_reach_it() -> None:
    config = StackConfig.from_env({"AUTH_PORT": "6104", "STRANGLER_DATA_DIR": "/srv/var"})
    auth = next(s for s in services(config) if s.name == "auth")
    assert auth.argv[1:] == (
        "-m",
        "source_systems",
        "auth",
        "--host",
        "127.0.0.1",
        "--port",
        "6104",
        "--db",
        "/srv/var/auth.sqlite3",
    )
    assert auth.health_url == "http://127.0.0.1:6104/healthz"
    assert source_urls(config)["AUTH_URL"] == "http://127.0.0.1:6104"
    for gateway in (s for s in services(config) if s.name in ("legacy", "drf")):
        assert gateway.env["AUTH_URL"] == "http://127.0.0.1:6104"
