"""Per-agent tools, the game-executable check and the SDK-order fallback, on the replay fixtures' observations."""

from __future__ import annotations

import math

import pytest

from arena_vllm.agent.actions import game_problem, resource_names, tools_for
from arena_vllm.agent.fallback import fallback_decision
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import load_settings
from tests.support.game_requests import foraging_observe, foraging_ticks

SETTINGS = load_settings()
REPLAY = [Observation.model_validate(body) for tick in foraging_ticks(3, 16) for body in tick]


def _obs(**fields: object) -> Observation:
    return Observation.model_validate({"agent_id": "a", "position": [0, 0, 0], **fields})


def test_collect_is_an_enum_of_exactly_the_nearest_names_the_agent_sees_and_the_prompt_lists() -> None:
    cap = SETTINGS.agent.max_entities_in_prompt
    assert any(len(o.nearby_resources) > cap for o in REPLAY)  # the cap is exercised by the replay itself
    for observation in REPLAY:
        tools = {tool["name"]: tool for tool in tools_for(observation, SETTINGS)}
        visible = resource_names(observation)
        if visible:
            assert tools["collect"]["parameters"]["properties"]["target_name"]["enum"] == visible[:cap]
        else:
            assert "collect" not in tools, "collect offered with nothing in sight"


def test_enums_hold_at_most_cap_names() -> None:
    many = _obs(nearby_resources=[{"name": f"r{n}", "position": [n, 0, 0]} for n in range(512)],
                custom={"recipes": {f"recipe{n}": {"inputs": {}} for n in range(64)}})
    tools = {tool["name"]: tool for tool in tools_for(many, SETTINGS, cap=3)}
    assert tools["collect"]["parameters"]["properties"]["target_name"]["enum"] == ["r0", "r1", "r2"]
    assert tools["craft_item"]["parameters"]["properties"]["recipe"]["enum"] == ["recipe0", "recipe1", "recipe10"]
    none = {tool["name"] for tool in tools_for(many, SETTINGS, cap=0)}
    assert "collect" not in none and "craft_item" not in none


def test_names_are_kept_exactly_nearest_first() -> None:
    observation = Observation.model_validate(foraging_observe("a", 1, (2.0, 0.0, -4.0)))
    assert resource_names(observation)[:2] == ["Apple2", "Apple3"]  # Godot node names, case and digits kept


def test_recipes_come_from_the_game_else_the_scene_and_no_recipes_means_no_craft_item() -> None:
    sent = _obs(custom={"recipes": {"rope": {"inputs": {"wood": 2}, "station": "workbench"}}})
    craft = next(t for t in tools_for(sent, SETTINGS) if t["name"] == "craft_item")
    assert craft["parameters"]["properties"]["recipe"]["enum"] == ["rope"]
    craft = next(t for t in tools_for(_obs(), SETTINGS) if t["name"] == "craft_item")
    assert craft["parameters"]["properties"]["recipe"]["enum"] == ["meal", "shelter", "torch"]
    assert "craft_item" not in [t["name"] for t in tools_for(_obs(), load_settings(["scene=plain", "scene.tools=[move_to,craft_item,idle]"]))]


def test_the_plain_scene_has_no_crafting_and_move_to_takes_the_scene_bounds() -> None:
    plain = load_settings(["scene=plain", "scene.coordinate_limit=40"])
    tools = {t["name"]: t for t in tools_for(REPLAY[0], plain)}
    assert list(tools) == ["move_to", "explore", "idle", "collect"]
    items = tools["move_to"]["parameters"]["properties"]["target_position"]["items"]
    assert (items["minimum"], items["maximum"]) == (-40.0, 40.0)


def test_the_configured_tool_set_is_not_changed() -> None:
    tools_for(REPLAY[0], SETTINGS)
    collect = next(t for t in SETTINGS.tools.tools if t.name == "collect")
    assert "enum" not in collect.parameters["properties"]["target_name"]


@pytest.mark.parametrize(
    ("tool", "params", "problem"),
    [
        ("collect", {"target_name": "apple2"}, "not among the visible resources"),
        ("collect", {"target_name": "Stone2"}, "not among the visible resources"),  # real, but out of sight
        ("craft_item", {"recipe": "sword"}, "not a known recipe"),
        ("move_to", {"target_position": [0, 0, 101]}, "three finite numbers within +-100"),
        ("move_to", {"target_position": [0, 0]}, "three finite numbers"),
        ("teleport", {}, "not a tool of scene 'foraging'"),
        ("idle", {"x": 1}, "takes no arguments"),
    ],
)
def test_game_problems_are_named(tool: str, params: dict, problem: str) -> None:
    observation = Observation.model_validate(foraging_observe("a", 1, (2.0, 0.0, -4.0)))
    assert problem in (game_problem(tool, params, observation, SETTINGS) or "")


def test_executable_decisions_pass() -> None:
    observation = Observation.model_validate(foraging_observe("a", 1, (2.0, 0.0, -4.0)))
    for tool, params in [("collect", {"target_name": "Apple2"}), ("craft_item", {"recipe": "torch"}),
                         ("move_to", {"target_position": [1.5, 0, -100]}), ("explore", {}), ("idle", {})]:
        assert game_problem(tool, params, observation, SETTINGS) is None


def test_fallback_flees_a_hazard_closer_than_3() -> None:
    obs = _obs(position=[2, 0, 1], nearby_hazards=[{"name": "Pit", "position": [1, 0, 1], "distance": 1.0}],
               nearby_resources=[{"name": "Apple", "position": [5, 0, 5]}])
    decision = fallback_decision(obs, SETTINGS, "deadline")
    assert (decision.tool, decision.source) == ("move_to", "fallback")
    assert decision.params["target_position"] == [7.0, 0.0, 1.0]  # 5 units straight away from the pit
    assert decision.reasoning == 'fallback: fleeing "Pit" at 1.0 (deadline)'


def test_fallback_then_walks_to_the_closest_resource_then_an_explore_target_then_idles() -> None:
    far_hazard = [{"name": "Pit", "position": [4, 0, 0]}]  # 4 > 3: not fled
    obs = _obs(nearby_hazards=far_hazard, nearby_resources=[
        {"name": "Wood", "position": [9, 0, 0]}, {"name": "Apple2", "position": [0, 0, 6]}])
    assert fallback_decision(obs, SETTINGS, "x").params == {"target_position": [0.0, 0.0, 6.0]}
    explore = _obs(exploration={"explore_targets": [
        {"direction": "east", "distance": 14, "position": [14, 0, 0]},
        {"direction": "north", "distance": 12, "position": [0, 0, -12]}]})
    decision = fallback_decision(explore, SETTINGS, "x")
    assert decision.params == {"target_position": [0.0, 0.0, -12.0]} and '"north"' in decision.reasoning
    assert fallback_decision(_obs(), SETTINGS, "x").tool == "idle"


def test_every_fallback_on_the_replay_is_game_executable() -> None:
    for observation in REPLAY:
        decision = fallback_decision(observation, SETTINGS, "late")
        assert game_problem(decision.tool, decision.params, observation, SETTINGS) is None, decision
        assert all(math.isfinite(v) for v in decision.params.get("target_position", []))


def test_every_agent_shares_the_system_prompt_and_the_tools_before_collect() -> None:
    """The cacheable prefix: only collect's enum (last) differs between agents of one scene."""
    from arena_vllm.agent.policy import plan_call

    plans = [plan_call(observation, SETTINGS) for observation in REPLAY]
    assert {plan.system_prompt for plan in plans} == {SETTINGS.scene.system_prompt}
    shared = [[tool for tool in plan.tools if tool["name"] != "collect"] for plan in plans]
    assert all(tools == shared[0] for tools in shared)
    assert all(plan.tools[-1]["name"] == "collect" for plan in plans if len(plan.tools) == 5)
