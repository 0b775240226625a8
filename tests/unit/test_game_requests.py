"""The game's own request bodies (tests/support/game_requests.py) over real HTTP, deciding against the FaultServer."""

from __future__ import annotations

import httpx

from tests.support.fault_server import FaultServer
from tests.support.game_requests import (
    cpp_tick,
    cpp_tool_execute,
    foraging_at_work,
    foraging_observe,
    foraging_ticks,
    hazard_experience,
    ipc_test_perception,
)
from tests.support.service import MOVE, agent_client, metric


def test_every_foraging_observe_body_is_accepted_with_agent_specific_tools(
    agent: httpx.Client, fault: FaultServer
) -> None:
    for body in foraging_ticks(ticks=2, agents=16)[1]:
        fault.requests.clear()
        response = agent.post("/observe", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["agent_id"] == body["agent_id"]
        [sent] = fault.requests
        tools = {tool["function"]["name"]: tool["function"] for tool in sent["tools"]}
        in_range = sorted(r["name"] for r in body["nearby_resources"] if r["distance"] <= 2.0)  # COLLECTION_RADIUS
        if in_range:
            assert sorted(tools["collect"]["parameters"]["properties"]["target_name"]["enum"]) == in_range
        else:
            assert "collect" not in tools
        prompt = sent["messages"][1]["content"]
        assert f"Last action: {body['tool_result']['tool']} " in prompt
        kinds = {station["type"] for station in body["nearby_stations"]}  # recipes made at a station in sight
        assert ("shelter" in prompt) == ("anvil" in kinds) and ('"torch": 1 wood + 1 stone at workbench' in prompt) == (
            "workbench" in kinds
        )
        assert "Recipes" in prompt or not kinds


def test_agents_at_a_station_or_a_resource_get_craft_item_or_collect(agent: httpx.Client, fault: FaultServer) -> None:
    for body in foraging_at_work():
        fault.requests.clear()
        assert agent.post("/observe", json=body).status_code == 200
        [sent] = fault.requests
        tools = {tool["function"]["name"]: tool["function"]["parameters"] for tool in sent["tools"]}
        if body["agent_id"] == "crafter_Workbench":
            assert tools["craft_item"]["properties"]["recipe"] == {"enum": ["meal", "torch"]}
        elif body["agent_id"] == "crafter_Anvil":
            assert tools["craft_item"]["properties"]["recipe"] == {"enum": ["shelter"]}
        else:
            assert "craft_item" not in tools
            assert tools["collect"]["properties"]["target_name"]["enum"][0] == body["agent_id"].removeprefix("picker_")


def test_an_experience_is_acknowledged_and_shown_in_that_agents_next_prompt_only(
    agent: httpx.Client, fault: FaultServer
) -> None:
    answer = agent.post("/experience", json=hazard_experience("forager_00", 40, (-2.5, 0.0, -2.5)))
    assert (answer.status_code, answer.json()) == (200, {"success": True})  # the SDK's answer

    agent.post("/observe", json=foraging_observe("forager_00", 41, (-2.5, 0.0, -2.5)))
    agent.post("/observe", json=foraging_observe("forager_01", 41, (-2.5, 0.0, -2.5)))
    mine, other = (request["messages"][1]["content"] for request in fault.requests)
    assert 'Recent events: tick 40 damage "Took damage from pit" from "Pit2" (-0.1 health).' in mine
    assert "Recent events" not in other
    assert metric(agent, "arena_agent_experiences_total", event_type="damage") == 1


def test_only_the_last_n_experiences_are_kept(fault: FaultServer) -> None:
    with agent_client(fault, "agent.experiences_per_agent=2") as client:
        for tick in (1, 2, 3):
            client.post("/experience", json=hazard_experience("a", tick, (0.0, 0.0, 0.0)))
        client.post("/observe", json=foraging_observe("a", 4, (0.0, 0.0, 0.0)))
    prompt = fault.requests[-1]["messages"][1]["content"]
    assert "tick 1 " not in prompt and "tick 2 " in prompt and "tick 3 " in prompt


def test_tools_execute_is_acknowledged_like_the_sdk(agent: httpx.Client, fault: FaultServer) -> None:
    for body in (
        cpp_tool_execute("move_to", {"target_position": [1, 0, 2], "agent_id": "a"}, "a", 12),
        cpp_tool_execute("idle", {}),
    ):
        response = agent.post("/tools/execute", json=body)
        assert (response.status_code, response.json()) == (200, {"success": True, "result": None, "error": ""})
    assert fault.requests == []  # nothing reaches the model


def test_the_cpp_perceptions_tick_gets_a_flat_action_per_perception(agent: httpx.Client) -> None:
    perceptions = [ipc_test_perception(f"agent_{n}", 9, n) for n in range(3)]
    response = agent.post("/tick", json=cpp_tick(9, perceptions))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tick"] == 9
    assert [(a["agent_id"], a["tick"], a["tool"], a["params"], a["source"]) for a in body["actions"]] == [
        (f"agent_{n}", 9, "move_to", MOVE, "native") for n in range(3)
    ]
    assert all(a["reasoning"].startswith("model: move_to") for a in body["actions"])


def test_unknown_extra_fields_are_ignored_not_rejected(agent: httpx.Client) -> None:
    body = {
        **foraging_observe("a", 1, (0.0, 0.0, 0.0)),
        "team": "red",
        "resources_collected": 2,
        "damage_taken": 1.5,
        "future_field": {"x": [1, 2]},
    }
    body["tool_result"] = {
        "tool": "move_to",
        "success": True,
        "result": {},
        "error": "",
        "duration_ticks": 3,
        "newer_key": 1,
    }
    assert agent.post("/observe", json=body).status_code == 200
    assert agent.post("/experience", json={**hazard_experience("a", 1, (0.0, 0.0, 0.0)), "extra": 1}).status_code == 200
    assert (
        agent.post("/tools/execute", json={**cpp_tool_execute("idle", {}), "tool_name": "idle", "x": 1}).status_code
        == 200
    )
