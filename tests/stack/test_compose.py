"""docker-compose.yml runs what `make run` runs: same commands, same environment.

Docker cannot run here, so Debian's `docker-compose config` (installed by `make test`) parses
and normalises the file, and the result is compared with stack/services.py.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from stack.services import container_config, services
from tests.support import ROOT

COMPOSE_CONFIG = container_config()  # the admin port is on the proxy's host


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


MONITORING = {"prometheus", "grafana"}


def test_compose_has_exactly_the_stacks_services_and_monitoring(compose: dict[str, Any]) -> None:
    expected = {service.name for service in services(COMPOSE_CONFIG)} | MONITORING
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


@pytest.mark.parametrize("service", services(COMPOSE_CONFIG), ids=lambda s: s.name)
def test_command_matches_make_run(compose: dict[str, Any], service: Any) -> None:
    assert tuple(compose["services"][service.name]["command"]) == service.argv


@pytest.mark.parametrize("service", services(COMPOSE_CONFIG), ids=lambda s: s.name)
def test_environment_matches_make_run(compose: dict[str, Any], service: Any) -> None:
    assert compose["services"][service.name].get("environment", {}) == dict(service.env)


@pytest.mark.parametrize("name", ["reservations", "crm", "operations"])
def test_source_systems_keep_their_sqlite_file_on_a_volume(
    compose: dict[str, Any], name: str
) -> None:
    volumes = compose["services"][name]["volumes"]
    assert f"{name}-data:/data:rw" in volumes
    assert f"{name}-data" in compose["volumes"]


def test_proxy_reads_the_hosts_routes_directory(compose: dict[str, Any]) -> None:
    assert f"{ROOT}:/config:rw" in compose["services"]["proxy"]["volumes"]
