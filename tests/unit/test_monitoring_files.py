"""The monitoring profile's files, checked structurally (Grafana itself cannot run here: its image is not buildable offline).

What runs for real is in tests/stack/test_monitoring.py (Prometheus scraping the stack, every
dashboard query evaluated by Prometheus). Here: the dashboard and provisioning files agree
with each other and with compose, and the agent series they name exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from arena_vllm.agent.metrics import AgentMetrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DASHBOARD = json.loads((MONITORING / "grafana/dashboards/arena-vllm.json").read_text())
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
METRIC = re.compile(r"\b((?:arena_agent|vllm:)[A-Za-z0-9_:]*)")


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def test_dashboard_panels_are_complete_and_unique() -> None:
    panels = DASHBOARD["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("decisions per second", "latency", "idle by failure", "queue", "kv cache", "tokens per second"):
        assert topic in titles


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    [source] = provisioned["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in COMPOSE["services"]
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(target["datasource"]["uid"] == source["uid"] for target in panel["targets"])


def test_dashboard_provider_path_is_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/arena.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = COMPOSE["services"]["grafana"]["volumes"]
    assert f"./monitoring/grafana/dashboards:{path}:ro" in mounts
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_agent_series_in_the_dashboard_exist() -> None:
    metrics = AgentMetrics()
    metrics.decisions.labels(tool="idle", source="native").inc()
    metrics.latency.observe(0.1)
    metrics.backend_errors.labels(kind="deadline").inc()
    exposed = {
        sample.name for family in text_string_to_metric_families(metrics.render().decode()) for sample in family.samples
    }
    named = {name for expr in dashboard_exprs() for name in METRIC.findall(expr) if name.startswith("arena_agent")}
    assert named and named <= exposed, named - exposed


def test_prometheus_scrapes_the_compose_services() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["agent"]["static_configs"][0]["targets"] == ["agent:5000"]
    [sd] = jobs["vllm"]["file_sd_configs"]
    mount = next(v for v in COMPOSE["services"]["prometheus"]["volumes"] if v.startswith("./monitoring:"))
    in_container = mount.split(":")[1]
    assert sd["files"] == [f"{in_container}/targets/vllm*.yml"]
    assert yaml.safe_load((MONITORING / "targets/vllm.yml").read_text()) == [{"targets": ["vllm:8000"]}]
    assert {"vllm", "agent"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["prometheus"]["profiles"] == ["monitoring"]
    assert COMPOSE["services"]["grafana"]["profiles"] == ["monitoring"]
