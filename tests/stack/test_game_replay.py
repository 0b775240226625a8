"""The game's own requests replayed against the CPU stack: every decision is one the game can carry out.

The bodies come from tests/support/game_requests.py (each names the Agent Arena script or C++
function it reproduces). The tiny model has random weights: what makes its decisions
game-executable is the per-agent schema (enums of the names in reach, the recipes it can craft there) under vLLM's
constrained decoding, which is what these tests check, with the real engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from arena_vllm.agent.actions import game_problem
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import load_settings
from tests.support.game_requests import (
    cpp_tick,
    cpp_tool_execute,
    foraging_at_work,
    foraging_observe,
    foraging_ticks,
    hazard_experience,
    ipc_test_perception,
)
from tests.support.stack import Stack

SETTINGS = load_settings()  # the agent container runs the same configs/ (foraging scene)


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.agent_url, timeout=300) as client:
        yield client


def test_three_foraging_ticks_of_16_agents_are_100_percent_game_executable(client: httpx.Client) -> None:
    problems, sources, tools, reasons = [], Counter(), Counter(), Counter()
    for tick, bodies in enumerate(foraging_ticks(ticks=3, agents=16), start=1):
        agents = [{"agent_id": body["agent_id"], "observations": body} for body in bodies]
        response = client.post("/tick", json={"tick": tick, "agents": agents})
        assert response.status_code == 200, response.text
        actions = response.json()["actions"]
        assert [a["agent_id"] for a in actions] == [body["agent_id"] for body in bodies]
        for body, action in zip(bodies, actions):
            decision = action["action"]
            sources[decision["source"]] += 1
            tools[decision["tool"]] += 1
            if decision["source"] != "native":
                reasons[decision["reasoning"][:160]] += 1
            problem = game_problem(decision["tool"], decision["params"], Observation.model_validate(body), SETTINGS)
            if problem:
                problems.append(f"{body['agent_id']} tick {tick}: {problem}")
            assert decision["reasoning"], decision
    assert problems == [], problems
    assert sources == {"native": 48}, f"not every decision came from the model: {sources}; {reasons.most_common(3)}"
    print(f"48/48 game-executable; tools {dict(tools)}")


def test_agents_at_a_station_or_a_resource_decide_game_executable_crafts_and_collects(client: httpx.Client) -> None:
    """Where craft_item and collect are offered (an agent 1.4 from a station holding its inputs, or from a resource),
    what the model picks three ticks running is still something the game carries out."""
    bodies = foraging_at_work()
    tools: Counter[str] = Counter()
    for tick in range(1, 4):
        agents = [{"agent_id": body["agent_id"], "observations": {**body, "tick": tick}} for body in bodies]
        response = client.post("/tick", json={"tick": tick, "agents": agents})
        assert response.status_code == 200, response.text
        for body, action in zip(bodies, response.json()["actions"]):
            decision = action["action"]
            assert decision["source"] == "native", decision
            assert (
                game_problem(decision["tool"], decision["params"], Observation.model_validate(body), SETTINGS) is None
            )
            tools[decision["tool"]] += 1
    assert set(tools) <= set(SETTINGS.scene.tools), tools
    print(f"{sum(tools.values())} at work, all game-executable; tools {dict(tools)}")


def test_the_cpp_perceptions_tick_answers_a_model_action_per_perception(client: httpx.Client) -> None:
    response = client.post("/tick", json=cpp_tick(5, [ipc_test_perception(f"agent_{n}", 5, n) for n in range(4)]))
    assert response.status_code == 200, response.text
    actions = response.json()["actions"]
    assert [(a["agent_id"], a["tick"], a["source"]) for a in actions] == [(f"agent_{n}", 5, "native") for n in range(4)]
    for action in actions:
        assert action["tool"] in SETTINGS.scene.tools and action["tool"] != "collect", action  # nothing in sight


def test_experience_and_tools_execute_answer_2xx_and_the_next_decision_still_comes(client: httpx.Client) -> None:
    experience = client.post("/experience", json=hazard_experience("forager_00", 7, (-2.5, 0.0, -2.5)))
    assert (experience.status_code, experience.json()) == (200, {"success": True})
    execute = client.post("/tools/execute", json=cpp_tool_execute("move_to", {"target_position": [1, 0, 1]}, "a", 7))
    assert (execute.status_code, execute.json()) == (200, {"success": True, "result": None, "error": ""})
    body = foraging_observe("forager_00", 8, (-2.5, 0.0, -2.5))
    decision = client.post("/observe", json=body).json()
    assert decision["source"] == "native", decision
    assert game_problem(decision["tool"], decision["params"], Observation.model_validate(body), SETTINGS) is None
