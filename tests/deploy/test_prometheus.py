"""deploy/prometheus: the config and rules load in promtool, and every alert is unit-tested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import EXPORTED, PROMETHEUS_DIR, metric_names, promtool

ALERTS = PROMETHEUS_DIR / "alerts.yml"
RECORDING = PROMETHEUS_DIR / "rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = load(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_config_is_valid() -> None:
    result = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_scrapes_every_proxy_replicas_admin_port_often_and_loads_the_alerts() -> None:
    config = load(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml", "rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "strangler-proxy"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["proxy:8081", "proxy-2:8181", "proxy-3:8281"]}]
    assert config["global"]["scrape_interval"] == "5s"


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_are_valid_and_read_only_exported_metrics() -> None:
    result = promtool("check", "rules", RECORDING)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [rule for group in load(RECORDING)["groups"] for rule in group["rules"]]
    assert [rule["record"] for rule in rules] == ["strangler:requests_by_backend:ratio5m"]
    assert metric_names(rules[0]["expr"]) == {"strangler_requests_total"}


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests"
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: with legacy's margin raised to 50 points, drf never alerts."""
    broken = ALERTS.read_text().replace("+ 0.01", "+ 0.5")
    assert broken != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    (tmp_path / "tests").mkdir()
    test_file = tmp_path / "tests" / "error_rates.yml"
    test_file.write_text((PROMETHEUS_DIR / "tests" / "error_rates.yml").read_text())
    result = promtool("test", "rules", test_file, cwd=tmp_path)
    assert result.returncode == 1
    assert "StranglerDrfErrorRateAboveLegacy" in result.stdout + result.stderr


def expectations() -> dict[str, set[bool]]:
    """alertname -> {True if some case expects it firing, False if some expects it quiet}."""
    seen: dict[str, set[bool]] = {}
    for path in RULE_TESTS:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                seen.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    return seen


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_firing_and_a_quiet_case(rule: dict[str, Any]) -> None:
    assert expectations().get(rule["alert"]) == {True, False}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_is_labelled_and_explained(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert set(rule["annotations"]) >= {"summary", "description"}
    grouped_by = {"resource", "backend", "instance"}
    assert any(
        f"$labels.{label}" in rule["annotations"]["summary"]
        and f"$labels.{label}" in rule["annotations"]["description"]
        for label in grouped_by
    )


def test_replicas_are_compared_by_the_revision_of_the_table_they_applied() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "StranglerReplicasDisagreeOnRoutes"]
    assert metric_names(rule["expr"]) == {"strangler_table_revision"}
    (store,) = [r for r in alert_rules() if r["alert"] == "StranglerStoreUnreachable"]
    assert metric_names(store["expr"]) == {"strangler_store_up"}


def test_rules_use_only_metrics_the_proxy_exports() -> None:
    exprs = [rule["expr"] for group in load(ALERTS)["groups"] for rule in group["rules"]]
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert used <= EXPORTED
    assert used >= EXPORTED - {
        "strangler_request_duration_seconds_bucket",
        "strangler_request_duration_seconds_sum",
        "strangler_request_duration_seconds_count",
        "strangler_in_flight_requests",
        "strangler_fallbacks_total",
        "strangler_open_tunnels",  # a level to watch: no alert
        # The dashboard shows it; replicas are compared by strangler_table_revision.
        "strangler_route_info",
        "strangler_resource_stage",  # shown by status and the dashboard; no alert
        "strangler_rollout_state",  # shown by the dashboard; StranglerRolloutAborted counts aborts
        "strangler_pinned_total",  # pinned clients' requests: expected traffic, no alert
    }
