"""The agent service end to end through the CPU stack: game-shaped requests, decisions from the real engine.

The model has random weights, so what is checked is the contract, not the wisdom: every
decision is a configured tool whose params validate against that tool's schema, made by the
model (``source`` native), never the policy's fallback. The ``stack`` fixture and marker come
from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.decisions import assert_model_decision
from tests.support.observations import OBSERVATION
from tests.support.stack import Stack


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    # Generous: the first decisions on a 2-core CPU include engine warm-up.
    with httpx.Client(base_url=stack.agent_url, timeout=120) as client:
        yield client


def native_decisions(client: httpx.Client) -> float:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "arena_agent_decisions_total" and sample.labels["source"] == "native"
    )


def test_ready_names_the_served_model(client: httpx.Client, stack: Stack) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "ready": True,
        "models": [stack.served_model],
        "tools_seen_in": "system_prompt",
    }  # format schema


def test_an_agent_arena_observation_gets_a_schema_valid_tool_decision(client: httpx.Client) -> None:
    response = client.post("/observe", json=OBSERVATION)
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["agent_id"] == "forager_1"
    assert_model_decision(decision)


def test_a_tick_of_8_returns_8_model_actions_in_input_order(client: httpx.Client) -> None:
    ids = [f"forager_{n}" for n in (5, 2, 7, 0, 3, 6, 1, 4)]
    agents = [
        {"agent_id": agent_id, "observations": {**OBSERVATION, "agent_id": agent_id, "position": [float(n), 0.0, 0.0]}}
        for n, agent_id in enumerate(ids)
    ]
    before = native_decisions(client)

    response = client.post("/tick", json={"tick": 43, "agents": agents})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tick"] == 43
    assert [action["agent_id"] for action in body["actions"]] == ids
    for action in body["actions"]:
        assert_model_decision(action["action"])
    assert native_decisions(client) - before == 8


def test_bad_requests_are_4xx_and_the_service_keeps_serving(client: httpx.Client) -> None:
    missing = client.post("/observe", json={"agent_id": "a"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "position"]
    nan = client.post(
        "/observe", content=b'{"agent_id": "a", "position": [NaN, 0, 0]}', headers={"content-type": "application/json"}
    )
    assert nan.status_code == 422
    assert client.post("/observe", content=b"\xff", headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/health").json() == {"status": "ok"}
    assert_model_decision(client.post("/observe", json=OBSERVATION).json())
