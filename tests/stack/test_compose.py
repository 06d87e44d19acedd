"""docker-compose.yml runs what `make fleet` runs: same commands, same environment.

Docker cannot run here, so Debian's `docker-compose config` (installed by `make test`) parses
and normalises the file, and the result is compared with stack/services.py.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from typing import Any

import pytest
import yaml

from proxy.dryrun import SECRET_VARIABLE
from stack.services import container_config, fleet_services, seed
from tests.support import ROOT

# The dry-run secret comes from the host's environment, as `make run` hands it to every process.
COMPOSE_SECRET = "compose-test-secret"
# Each admin port is on its replica's host.
COMPOSE_CONFIG = replace(container_config().fleet(), shadow_secret=COMPOSE_SECRET)
FLEET = fleet_services(COMPOSE_CONFIG)
APPS = [service for service in FLEET if service.name != "etcd"]  # etcd has its own image
REPLICAS = [service for service in FLEET if service.name.startswith("proxy")]


def compose_config(secret: str | None) -> dict[str, Any]:
    """`docker-compose config` with STRANGLER_SHADOW_SECRET set to `secret` (None: unset)."""
    env = {name: value for name, value in os.environ.items() if name != SECRET_VARIABLE}
    if secret is not None:
        env[SECRET_VARIABLE] = secret
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_config(COMPOSE_SECRET)


MONITORING = {"prometheus", "grafana"}


def test_compose_has_exactly_the_fleets_services_the_seed_and_monitoring(
    compose: dict[str, Any],
) -> None:
    expected = {service.name for service in FLEET} | {"seed"} | MONITORING
    assert set(compose["services"]) == expected


def test_prometheus_and_grafana_read_the_deploy_folder(compose: dict[str, Any]) -> None:
    assert (
        f"{ROOT}/deploy/prometheus:/etc/prometheus:ro"
        in compose["services"]["prometheus"]["volumes"]
    )
    assert (
        f"{ROOT}/deploy/grafana/provisioning:/etc/grafana/provisioning:ro"
        in compose["services"]["grafana"]["volumes"]
    )


@pytest.mark.parametrize("service", FLEET, ids=lambda s: s.name)
def test_command_matches_make_fleet(compose: dict[str, Any], service: Any) -> None:
    assert tuple(compose["services"][service.name]["command"]) == service.argv


@pytest.mark.parametrize("service", FLEET, ids=lambda s: s.name)
def test_environment_matches_make_fleet(compose: dict[str, Any], service: Any) -> None:
    assert compose["services"][service.name].get("environment", {}) == dict(service.env)


@pytest.mark.parametrize("service", APPS, ids=lambda s: s.name)
def test_every_process_of_ours_runs_the_stacks_image(compose: dict[str, Any], service: Any) -> None:
    assert compose["services"][service.name]["image"] == "strangler:local"


@pytest.mark.parametrize("name", ["reservations", "crm", "operations", "auth"])
def test_source_systems_keep_their_sqlite_file_on_a_volume(
    compose: dict[str, Any], name: str
) -> None:
    volumes = compose["services"][name]["volumes"]
    assert f"{name}-data:/data:rw" in volumes
    assert f"{name}-data" in compose["volumes"]


def test_etcd_keeps_its_data_on_a_volume_and_answers_only_the_hosts_loopback(
    compose: dict[str, Any],
) -> None:
    etcd = compose["services"]["etcd"]
    assert etcd["image"].startswith("bitnami/etcd:3.5.")
    assert "etcd-data:/data:rw" in etcd["volumes"]
    assert "--data-dir" in etcd["command"]
    assert etcd["command"][etcd["command"].index("--data-dir") + 1] == "/data/etcd"
    assert etcd["ports"] == ["127.0.0.1:2379:2379/tcp"]


def test_the_seed_pushes_the_hosts_routes_yaml_once_before_any_proxy_starts(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["seed"]
    assert tuple(service["command"]) == seed(COMPOSE_CONFIG)
    assert f"{ROOT}/routes.yaml:/config/routes.yaml:ro" in service["volumes"]
    assert service["restart"] == "no"
    assert service["depends_on"] == {"etcd": {"condition": "service_started"}}
    for replica in REPLICAS:
        assert compose["services"][replica.name]["depends_on"]["seed"] == {
            "condition": "service_completed_successfully"
        }


@pytest.mark.parametrize("replica", REPLICAS, ids=lambda s: s.name)
def test_each_replica_uses_the_store_and_caches_its_table_on_a_volume(
    compose: dict[str, Any], replica: Any
) -> None:
    service = compose["services"][replica.name]
    command = service["command"]
    assert command[command.index("--store") + 1] == "etcd://etcd:2379/strangler"
    assert "--routes" not in command
    cache = command[command.index("--store-cache") + 1]
    assert cache.startswith("/data/")
    assert f"{replica.name}-cache:/data:rw" in service["volumes"]
    admin = command[command.index("--admin-port") + 1]
    published = {(p["published"], p["target"]) for p in service["ports"]}
    assert published == {(replica.port, replica.port), (int(admin), int(admin))}


def test_without_a_secret_every_process_has_an_empty_one_and_refuses_dry_runs() -> None:
    services = compose_config(None)["services"]
    for service in FLEET:
        if service.name not in ("etcd", "auth"):  # auth never handles a dry run: no secret
            assert services[service.name]["environment"][SECRET_VARIABLE] == "", service.name
    assert "environment" not in services["auth"]
