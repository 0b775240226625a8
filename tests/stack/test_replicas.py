"""Two vLLM replicas behind one agent (``ops replicas --cpu --count 2``): spread, and a replica killed mid-tick.

The stack is the test CPU stack plus the override ``ops replicas`` generates, so what runs is
what a user gets from that command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.replicas import write_override
from tests.support.observations import OBSERVATION
from tests.support.stack import Stack, start_stack

pytestmark = pytest.mark.stack

AGENTS = 12


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("replicas")
    override = write_override("cpu", count=2, output=workdir / "docker-compose.replicas.yml")
    assert override is not None
    with start_stack(workdir, "cpu", [str(override)]) as running:
        yield running


def tick(stack: Stack, number: int) -> list[dict]:
    body = {
        "tick": number,
        "agents": [
            {
                "agent_id": f"a{i}",
                "observations": {**OBSERVATION, "agent_id": f"a{i}", "position": [float(i), 0.0, 1.0]},
            }
            for i in range(AGENTS)
        ],
    }
    response = httpx.post(f"{stack.agent_url}/tick", json=body, headers=stack.auth_headers, timeout=120)
    response.raise_for_status()
    return response.json()["actions"]


def agent_metric(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.agent_url}/metrics", headers=stack.auth_headers, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def vllm_requests(stack: Stack, service: str) -> float:
    """Finished requests one replica counted (its /metrics, read inside its container: replicas publish no port)."""
    script = (
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics', timeout=5)"
        ".read().decode())"
    )
    exit_code, output = stack.container(service).exec_run(["python3", "-c", script])
    assert exit_code == 0, output.decode(errors="replace")[-500:]
    families = text_string_to_metric_families(output.decode())
    return sum(s.value for f in families for s in f.samples if s.name == "vllm:request_success_total")


def failed_decisions(stack: Stack) -> float:
    return agent_metric(stack, "arena_agent_decisions_total", source="idle_after_failure")


def test_ready_lists_both_replicas_up(replicas: Stack) -> None:
    body = httpx.get(f"{replicas.agent_url}/ready", headers=replicas.auth_headers, timeout=30).json()
    assert body["ready"] is True
    assert [(row["api_base"], row["up"]) for row in body["replicas"]] == [
        ("http://vllm:8000/v1", True),
        ("http://vllm-1:8000/v1", True),
    ]


def test_a_tick_is_spread_over_both_replicas(replicas: Stack) -> None:
    before = {name: vllm_requests(replicas, name) for name in ("vllm", "vllm-1")}
    failed = failed_decisions(replicas)
    actions = tick(replicas, 1)
    assert len(actions) == AGENTS
    assert failed_decisions(replicas) == failed
    served = {name: vllm_requests(replicas, name) - before[name] for name in before}
    assert served["vllm"] >= 1 and served["vllm-1"] >= 1, served
    assert served["vllm"] + served["vllm-1"] >= AGENTS


def test_killing_a_replica_mid_tick_loses_no_decision_after_that_tick(replicas: Stack) -> None:
    tick(replicas, 2)  # warm
    outcome: dict[str, object] = {}

    def tick_in_background() -> None:
        try:
            outcome["actions"] = tick(replicas, 3)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    runner = threading.Thread(target=tick_in_background)
    runner.start()
    deadline = time.monotonic() + 30
    while agent_metric(replicas, "arena_agent_backend_requests_in_flight") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # kill while calls are inside the engines, not before the tick started
    replicas.container("vllm-1").kill()
    runner.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert len(outcome["actions"]) == AGENTS  # type: ignore[arg-type]  # the killed tick still answers every agent

    failed = failed_decisions(replicas)
    for number in range(4, 7):
        assert len(tick(replicas, number)) == AGENTS
    assert failed_decisions(replicas) == failed, "an agent lost a decision after the tick the replica died in"

    body = httpx.get(f"{replicas.agent_url}/ready", headers=replicas.auth_headers, timeout=30).json()
    assert body["ready"] is True
    assert [row["up"] for row in body["replicas"]] == [True, False]
