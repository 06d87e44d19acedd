"""deploy/k8s describes the whole stack as `make fleet` runs it, and Kubernetes accepts it.

No cluster here: every manifest is validated against Kubernetes' own schemas
(kubernetes-validate, strict: unknown fields fail), and each workload's command and environment
is compared with stack/services.py, with hosts set to the manifests' Service names and the
store on the 3-member etcd StatefulSet.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from proxy.routing.parser import parse_table
from proxy.routing.store import parse_store_url
from proxy.settings import Settings
from stack.services import (
    AUTH_SYSTEM,
    DEFAULT_PORTS,
    FLEET_PORTS,
    SOURCE_SYSTEMS,
    Service,
    container_config,
    seed,
    services,
)
from tests.support import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.35"
ROUTES_CONFIGMAP = "strangler-routes"

ETCD_MEMBERS = 3
ETCD_HOSTS = [f"etcd-{n}.etcd" for n in range(ETCD_MEMBERS)]  # the headless Service's names
STORE = f"etcd://{','.join(f'{host}:2379' for host in ETCD_HOSTS)}/strangler"
# The admin port is a Service of its own; one Deployment runs every proxy replica.
K8S_CONFIG = replace(container_config(proxy_admin="proxy-admin"), store=STORE)
K8S_HOSTS = {key: host for key, host in K8S_CONFIG.hosts.items() if key in DEFAULT_PORTS}
STACK = services(K8S_CONFIG)

Manifest = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(path for path in K8S_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def load_manifests() -> list[Manifest]:
    return [doc for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFESTS = load_manifests()


def find(kind: str, name: str) -> Manifest:
    (found,) = [m for m in MANIFESTS if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def workload(name: str) -> Manifest:
    (found,) = [
        m
        for m in MANIFESTS
        if m["kind"] in {"Deployment", "StatefulSet"} and m["metadata"]["name"] == name
    ]
    return found


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def container(manifest: Manifest) -> dict[str, Any]:
    (only,) = pod_spec(manifest)["containers"]
    result: dict[str, Any] = only
    return result


POD_KINDS = {"Deployment", "StatefulSet", "Job"}


def pods() -> Iterator[Manifest]:
    return (manifest for manifest in MANIFESTS if manifest["kind"] in POD_KINDS)


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in pods():
        for item in pod_spec(manifest)["containers"]:
            yield manifest["metadata"]["name"], item


def port_number(item: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's target port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in item["ports"] if p["name"] == port]
    return int(number)


def argv_of(manifest: Manifest) -> tuple[str, ...]:
    item = container(manifest)
    return tuple(item.get("command", [])) + tuple(item.get("args", []))


def arg_after(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def ids(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


# --- Kubernetes accepts every manifest --------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=ids)
def test_manifest_validates_against_kubernetes_schemas(manifest: Manifest) -> None:
    version = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert version == KUBERNETES_VERSION


def test_an_unknown_field_fails_validation() -> None:
    broken = copy.deepcopy(workload("proxy"))
    container(broken)["readinessProbe"]["httpGet"]["paht"] = "/-/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]
    assert kustomization["namespace"] == find("Namespace", "strangler")["metadata"]["name"]


# --- the same processes as `make run` ---------------------------------------------------------


def test_manifests_run_exactly_the_stacks_services_etcd_and_the_seed() -> None:
    names = {(m["kind"], m["metadata"]["name"]) for m in pods()}
    kinds = {name: "StatefulSet" for name in (*SOURCE_SYSTEMS, AUTH_SYSTEM)}
    assert names == {
        *((kinds.get(service.name, "Deployment"), service.name) for service in STACK),
        ("StatefulSet", "etcd"),
        ("Job", "routes-seed"),
    }


@pytest.mark.parametrize("service", STACK, ids=lambda s: s.name)
def test_command_matches_make_run(service: Service) -> None:
    assert argv_of(workload(service.name)) == service.argv


@pytest.mark.parametrize("service", STACK, ids=lambda s: s.name)
def test_environment_matches_make_run(service: Service) -> None:
    env = container(workload(service.name)).get("env", [])
    assert {item["name"]: item["value"] for item in env} == dict(service.env)
    assert len(env) == len(service.env)


@pytest.mark.parametrize("key", sorted(K8S_HOSTS))
def test_every_host_the_stack_uses_is_a_service_on_its_port(key: str) -> None:
    service = find("Service", K8S_HOSTS[key])
    (port,) = service["spec"]["ports"]
    assert port["port"] == DEFAULT_PORTS[key]
    owner = {"proxy_admin": "proxy"}.get(key, key)
    target = workload(owner)
    assert (
        service["spec"]["selector"].items()
        <= target["spec"]["template"]["metadata"]["labels"].items()
    )
    assert port_number(container(target), port["targetPort"]) == DEFAULT_PORTS[key]


@pytest.mark.parametrize("name", (*SOURCE_SYSTEMS, AUTH_SYSTEM))
def test_source_systems_keep_their_sqlite_file_on_a_claimed_volume(name: str) -> None:
    manifest = find("StatefulSet", name)
    assert manifest["spec"]["replicas"] == 1
    (claim,) = manifest["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(manifest)["volumeMounts"]}
    db = PurePosixPath(arg_after(argv_of(manifest), "--db"))
    assert mounts[claim["metadata"]["name"]] == str(db.parent) == str(K8S_CONFIG.data_dir)


@pytest.mark.parametrize("name, item", list(containers()), ids=[name for name, _ in containers()])
def test_every_container_has_resources_and_runs_unprivileged(name: str, item: Any) -> None:
    assert set(item["resources"]) == {"requests", "limits"}
    assert item["securityContext"]["allowPrivilegeEscalation"] is False
    (manifest,) = [m for m in pods() if m["metadata"]["name"] == name]
    assert pod_spec(manifest)["securityContext"]["runAsNonRoot"] is True
    assert pod_spec(manifest)["enableServiceLinks"] is False


# --- the proxy fleet ---------------------------------------------------------------------------


PROXY = workload("proxy")


def test_proxy_runs_three_replicas() -> None:
    assert PROXY["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    "probe, path", [("readinessProbe", "/-/readyz"), ("livenessProbe", "/-/healthz")]
)
def test_probes_ask_the_admin_port(probe: str, path: str) -> None:
    item = container(PROXY)
    check = item[probe]["httpGet"]
    assert check["path"] == path
    admin_port = int(arg_after(argv_of(PROXY), "--admin-port"))
    assert port_number(item, check["port"]) == admin_port == DEFAULT_PORTS["proxy_admin"]


def test_termination_leaves_time_to_leave_the_endpoints_and_drain() -> None:
    command = container(PROXY)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    sleep = float(command[1])
    assert sleep >= 5
    grace = pod_spec(PROXY)["terminationGracePeriodSeconds"]
    assert grace > sleep + Settings().drain_seconds


def test_prometheus_scrapes_the_admin_port() -> None:
    annotations = PROXY["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(DEFAULT_PORTS["proxy_admin"]),
        "prometheus.io/path": "/metrics",
    }


def test_the_public_service_exposes_only_the_public_port() -> None:
    (port,) = find("Service", "proxy")["spec"]["ports"]
    assert port_number(container(PROXY), port["targetPort"]) == DEFAULT_PORTS["proxy"] == 8080


def test_proxies_read_the_table_from_the_etcd_members_and_cache_it_on_their_own_volume() -> None:
    argv = argv_of(PROXY)
    assert "--routes" not in argv
    assert arg_after(argv, "--store") == STORE
    cache = PurePosixPath(arg_after(argv, "--store-cache"))
    volumes = {v["name"]: v for v in pod_spec(PROXY)["volumes"]}
    assert not [v for v in volumes.values() if "configMap" in v]
    (mount,) = [m for m in container(PROXY)["volumeMounts"] if m["mountPath"] == str(cache.parent)]
    assert volumes[mount["name"]] == {"name": mount["name"], "emptyDir": {}}


# --- the store: etcd, and the seed of its first table ------------------------------------------


ETCD = workload("etcd")
SEED = find("Job", "routes-seed")


def etcd_flags() -> dict[str, str]:
    argv = argv_of(ETCD)
    assert argv[0] == "etcd"
    return {argv[i]: argv[i + 1] for i in range(1, len(argv), 2)}


def test_etcd_runs_three_members_named_by_the_headless_service() -> None:
    assert ETCD["spec"]["replicas"] == ETCD_MEMBERS
    assert ETCD["spec"]["podManagementPolicy"] == "Parallel"
    service = find("Service", ETCD["spec"]["serviceName"])
    assert service["metadata"]["name"] == "etcd"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    labels = ETCD["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {
        port["name"]: (port["port"], port_number(container(ETCD), port["targetPort"]))
        for port in service["spec"]["ports"]
    }
    assert ports == {
        "client": (FLEET_PORTS["etcd"], FLEET_PORTS["etcd"]),
        "peer": (FLEET_PORTS["etcd_peer"], FLEET_PORTS["etcd_peer"]),
    }


def test_each_etcd_member_announces_its_own_name_and_knows_the_others() -> None:
    flags = etcd_flags()
    env = {item["name"]: item["valueFrom"]["fieldRef"] for item in container(ETCD)["env"]}
    assert env == {"POD_NAME": {"fieldPath": "metadata.name"}}
    assert flags["--name"] == "$(POD_NAME)"
    assert flags["--advertise-client-urls"] == "http://$(POD_NAME).etcd:2379"
    assert flags["--initial-advertise-peer-urls"] == "http://$(POD_NAME).etcd:2380"
    assert flags["--initial-cluster"] == ",".join(
        f"etcd-{n}=http://{host}:2380" for n, host in enumerate(ETCD_HOSTS)
    )
    assert flags["--listen-client-urls"] == "http://0.0.0.0:2379"
    assert flags["--initial-cluster-state"] == "new"


def test_the_store_url_names_every_etcd_member() -> None:
    assert parse_store_url(STORE).endpoints == tuple(f"http://{host}:2379" for host in ETCD_HOSTS)
    assert parse_store_url(STORE).prefix == "/strangler"


def test_etcd_keeps_its_data_on_a_claimed_volume() -> None:
    (claim,) = ETCD["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(ETCD)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == str(
        PurePosixPath(etcd_flags()["--data-dir"]).parent
    )
    assert find("PodDisruptionBudget", "etcd")["spec"]["maxUnavailable"] == 1


def test_the_seed_job_pushes_the_routes_configmap_into_an_empty_store() -> None:
    assert argv_of(SEED) == seed(K8S_CONFIG)
    routes = PurePosixPath(arg_after(argv_of(SEED), "stack.seed"))
    (volume,) = [v for v in pod_spec(SEED)["volumes"] if "configMap" in v]
    assert volume["configMap"] == {"name": ROUTES_CONFIGMAP}
    (mount,) = [m for m in container(SEED)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == str(routes.parent)
    assert routes.name in find("ConfigMap", ROUTES_CONFIGMAP)["data"]
    assert pod_spec(SEED)["restartPolicy"] == "OnFailure"


def test_routes_configmap_is_the_repositorys_routes_yaml() -> None:
    data = find("ConfigMap", ROUTES_CONFIGMAP)["data"]
    assert data == {"routes.yaml": (ROOT / "routes.yaml").read_text()}


def test_in_the_fleet_the_routes_send_each_backend_to_its_service() -> None:
    """The proxy's environment overrides routes.yaml's loopback URLs with the Services'."""
    env = {item["name"]: item["value"] for item in container(PROXY)["env"]}
    text = find("ConfigMap", ROUTES_CONFIGMAP)["data"]["routes.yaml"]
    table = parse_table(text, environ=env)
    assert {name: backend.url for name, backend in table.backends.items()} == {
        "legacy": f"http://legacy:{DEFAULT_PORTS['legacy']}",
        "drf": f"http://drf:{DEFAULT_PORTS['drf']}",
    }
