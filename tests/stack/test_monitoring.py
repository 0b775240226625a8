"""The monitoring profile against the real stack: Prometheus (built from Debian's package) scrapes vLLM and the agent.

Grafana is not started: its image cannot be pulled or built here. Its dashboard is checked by
having Prometheus evaluate every one of its queries (and tests/unit/test_monitoring_files.py
checks the provisioning files).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.observations import OBSERVATION
from tests.support.stack import Stack, free_port

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((REPO / "monitoring/grafana/dashboards/arena-vllm.json").read_text())
METRIC = re.compile(r"\b((?:arena_agent|vllm:)[A-Za-z0-9_:]*)")


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[str]:
    """The profile's Prometheus on a free loopback port; removed afterwards (the stack's own `down` skips profiles)."""
    port = free_port()
    with stack.env_file.open("a") as env:
        env.write(f"PROMETHEUS_HOST_PORT={port}\n")
    stack.compose_cmd("--profile", "monitoring", "up", "-d", "--wait", "prometheus")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.compose_cmd("--profile", "monitoring", "rm", "-fsv", "prometheus")


def query(prometheus: str, expr: str) -> dict[str, Any]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]


def wait_for(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(1)


def targets_up(prometheus: str) -> dict[str, str]:
    active = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    return {target["labels"]["job"]: target["health"] for target in active}


def test_both_targets_are_up_and_a_query_returns_agent_decisions(stack: Stack, prometheus: str) -> None:
    wait_for(lambda: targets_up(prometheus) == {"vllm": "up", "agent": "up"}, "vllm and agent targets up")
    agents = [{"agent_id": f"m{i}", "observations": {**OBSERVATION, "agent_id": f"m{i}"}} for i in range(4)]
    response = httpx.post(
        f"{stack.agent_url}/tick", json={"tick": 1, "agents": agents}, headers=stack.auth_headers, timeout=120
    )
    response.raise_for_status()
    decided = wait_for(
        lambda: query(prometheus, "sum(arena_agent_decisions_total)")["result"], "agent decisions in Prometheus"
    )
    assert float(decided[0]["value"][1]) >= 4


def test_every_dashboard_query_is_valid_promql_on_known_series(stack: Stack, prometheus: str) -> None:
    wait_for(lambda: query(prometheus, "sum(arena_agent_decisions_total)")["result"], "a first agent scrape")
    wait_for(lambda: query(prometheus, "up{job='vllm'} == 1")["result"], "a first vLLM scrape")
    known = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=10).json()["data"])
    # Agent families the service declares (# TYPE) but has no sample of yet: the error counter of a healthy stack.
    agent_text = httpx.get(f"{stack.agent_url}/metrics", headers=stack.auth_headers, timeout=10).text
    declared = set(re.findall(r"^# TYPE (\S+)", agent_text, re.MULTILINE))
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            query(prometheus, target["expr"])  # Prometheus parses and evaluates it
            named = set(METRIC.findall(target["expr"]))
            missing = {n for n in named if n not in known | declared and re.sub(r"_bucket$", "", n) not in declared}
            assert not missing, f"panel {panel['title']!r} names series nobody exports: {missing}"


def test_promtool_accepts_the_config(stack: Stack, prometheus: str) -> None:
    exit_code, output = stack.container("prometheus").exec_run(
        ["promtool", "check", "config", "/etc/prometheus/prometheus.yml"]
    )
    assert exit_code == 0, output.decode(errors="replace")
