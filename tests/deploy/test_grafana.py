"""deploy/grafana: the dashboard's queries are valid PromQL over metrics the proxy exports.

Grafana cannot run here, so each query, with Grafana's variables replaced by concrete values,
becomes a recording rule that `promtool check rules` parses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from proxy.observe.metrics import Metrics
from tests.deploy.promql import (
    EXPORTED,
    metric_names,
    promtool,
    registered_metrics,
    series_names,
)
from tests.support import ROOT

GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "strangler.json"
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$resource": "bookings",
    "$backend": "drf",
}


def dashboard() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def panels() -> list[dict[str, Any]]:
    return list(dashboard()["panels"])


def queries() -> dict[str, str]:
    """Record name -> PromQL of every panel target and every Prometheus annotation."""
    result = {
        f"grafana:panel_{panel['id']}_{target['refId']}": target["expr"]
        for panel in panels()
        for target in panel["targets"]
    }
    for index, annotation in enumerate(dashboard()["annotations"]["list"]):
        if "expr" in annotation:
            result[f"grafana:annotation_{index}"] = annotation["expr"]
    return result


def concrete(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def check_rules(tmp_path: Path, records: dict[str, str]) -> tuple[int, str]:
    rules = [{"record": name, "expr": concrete(expr)} for name, expr in records.items()]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", path)
    return result.returncode, result.stdout + result.stderr


def datasource_uid() -> str:
    provisioning = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == "prometheus"
    uid: str = datasource["uid"]
    return uid


@pytest.mark.parametrize("panel", panels(), ids=lambda panel: panel["title"])
def test_every_panel_has_the_provisioned_datasource_and_a_query(panel: dict[str, Any]) -> None:
    expected = {"type": "prometheus", "uid": datasource_uid()}
    assert panel["datasource"] == expected
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"] == expected
        assert target["expr"].strip()


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    records = queries()
    assert len(records) >= len(panels()) + 2
    returncode, output = check_rules(tmp_path, records)
    assert returncode == 0, output
    assert f"SUCCESS: {len(records)} rules found" in output


def test_an_invalid_query_is_caught(tmp_path: Path) -> None:
    returncode, output = check_rules(tmp_path, {"grafana:broken": "sum by (backend) (rate(x[1m])"})
    assert returncode == 1
    assert "grafana:broken" in output or "parse error" in output


@pytest.mark.parametrize("name", sorted(queries()))
def test_every_query_reads_only_exported_metrics(name: str) -> None:
    used = metric_names(queries()[name])
    assert used
    assert used <= EXPORTED


def test_the_dashboard_shows_every_part_of_the_migration() -> None:
    used = set().union(*(metric_names(expr) for expr in queries().values()))
    assert used >= {
        "strangler_route_info",
        "strangler_requests_total",
        "strangler_request_duration_seconds_bucket",
        "strangler_in_flight_requests",
        "strangler_upstream_errors_total",
        "strangler_shadow_comparisons_total",
        "strangler_fallbacks_total",
        "strangler_config_reloads_total",
        "strangler_table_revision",
        "strangler_store_up",
    }
    exprs = " ".join(queries().values())
    assert "histogram_quantile(0.5," in exprs
    assert "histogram_quantile(0.99," in exprs


def test_flips_are_annotations() -> None:
    annotations = {a["name"]: a for a in dashboard()["annotations"]["list"] if "expr" in a}
    assert "strangler_route_info" in annotations["Route flips"]["expr"]
    assert "strangler_config_reloads_total" in annotations["Config reloads"]["expr"]


@pytest.mark.parametrize("variable", dashboard()["templating"]["list"], ids=lambda v: v["name"])
def test_variables_read_exported_labels(variable: dict[str, Any]) -> None:
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"])
    assert match is not None
    assert match[1] in EXPORTED
    assert match[2] == variable["name"]
    assert f"${variable['name']}" in GRAFANA_VARIABLES


def test_design_metrics_are_the_ones_the_proxy_registers() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    assert series_names(registered_metrics(registry)) == EXPORTED


def test_dashboards_provider_reads_the_mounted_dashboards_directory() -> None:
    provider = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "strangler.yml").read_text()
    )
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards"
    assert dashboard()["uid"] == "strangler"
