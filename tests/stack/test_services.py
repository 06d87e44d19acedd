"""The stack description is pure: ports and URLs come from the environment, nothing else."""

from __future__ import annotations

from pathlib import Path

from stack.services import DEFAULT_PORTS, StackConfig, services, source_urls


def test_defaults_are_the_documented_ports() -> None:
    config = StackConfig.from_env({})
    assert config.ports == {
        "reservations": 5101,
        "crm": 5102,
        "operations": 5103,
        "legacy": 5000,
        "drf": 8000,
        "proxy": 8080,
        "proxy_admin": 8081,
    }
    assert [s.name for s in services(config)] == [
        "reservations",
        "crm",
        "operations",
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
