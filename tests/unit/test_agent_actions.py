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


#: scripts/foraging.gd: an agent 1.4 from the Workbench (CRAFTING_RADIUS 2.5) holding a torch's inputs, and
#: one 1.4 from Apple2 (COLLECTION_RADIUS 2.0).
AT_WORKBENCH = Observation.model_validate(
    foraging_observe("smith", 1, (11.0, 0.0, 9.0), inventory={"wood": 1, "stone": 1})
)
AT_APPLE2 = Observation.model_validate(foraging_observe("picker", 1, (3.0, 0.0, -5.0)))


def _names(observation: Observation, settings=SETTINGS) -> list[str]:
    return [tool["name"] for tool in tools_for(observation, settings)]


def test_collect_is_an_enum_of_exactly_the_resources_within_the_games_collect_range() -> None:
    radius = SETTINGS.scene.collect_radius
    offered = 0
    for observation in REPLAY:
        tools = {tool["name"]: tool for tool in tools_for(observation, SETTINGS)}
        in_range = [
            r.name for r in sorted(observation.nearby_resources, key=lambda r: r.distance) if r.distance <= radius
        ]
        if in_range:
            offered += 1
            assert tools["collect"]["parameters"]["properties"]["target_name"]["enum"] == in_range
        else:
            assert "collect" not in tools, "collect offered with nothing in range"
    assert 0 < offered < sum(1 for o in REPLAY if o.nearby_resources)  # the replay has both kinds of agents
    assert tools_for(AT_APPLE2, SETTINGS)[-1]["parameters"]["properties"]["target_name"] == {"enum": ["Apple2"]}


def test_enums_hold_at_most_cap_names() -> None:
    many = _obs(
        nearby_resources=[{"name": f"r{n}", "position": [n / 1000, 0, 0]} for n in range(512)],
        custom={"recipes": {f"recipe{n}": {"inputs": {}} for n in range(64)}},
    )
    tools = {tool["name"]: tool for tool in tools_for(many, SETTINGS, cap=3)}
    assert tools["collect"]["parameters"]["properties"]["target_name"]["enum"] == ["r0", "r1", "r2"]
    assert tools["craft_item"]["parameters"]["properties"]["recipe"]["enum"] == ["recipe0", "recipe1", "recipe10"]
    none = {tool["name"] for tool in tools_for(many, SETTINGS, cap=0)}
    assert "collect" not in none and "craft_item" not in none


def test_names_are_kept_exactly_nearest_first() -> None:
    observation = Observation.model_validate(foraging_observe("a", 1, (2.0, 0.0, -4.0)))
    assert resource_names(observation)[:2] == ["Apple2", "Apple3"]  # Godot node names, case and digits kept


def test_craft_item_offers_the_recipes_craftable_where_the_agent_stands() -> None:
    """foraging.gd craft_item: a station of the recipe's type within CRAFTING_RADIUS and every input held."""
    tools = {tool["name"]: tool for tool in tools_for(AT_WORKBENCH, SETTINGS)}
    assert tools["craft_item"]["parameters"]["properties"]["recipe"] == {"enum": ["torch"]}  # meal: no berries held
    fed = AT_WORKBENCH.model_copy(update={"custom": AT_WORKBENCH.custom.model_copy(update={"inventory": {"berry": 2}})})
    assert tools_for(fed, SETTINGS)[-1]["parameters"]["properties"]["recipe"] == {"enum": ["meal"]}
    assert "craft_item" not in _names(AT_APPLE2)  # no station within 2.5
    far = Observation.model_validate(foraging_observe("far", 1, (12.0, 0.0, 7.0), inventory={"wood": 1, "stone": 1}))
    assert far.nearby_stations[0].distance == 3.0 and "craft_item" not in _names(far)  # 3.0 > 2.5
    assert "craft_item" in _names(far, load_settings(["scene.craft_radius=null"]))  # null: every known recipe
    assert not any("craft_item" in _names(o) for o in REPLAY)  # no replay agent stands at a station


def test_recipes_come_from_the_game_else_the_scene_and_no_recipes_means_no_craft_item() -> None:
    body = foraging_observe("smith", 1, (11.0, 0.0, 9.0), inventory={"wood": 1})
    sent = Observation.model_validate(
        {**body, "custom": {**body["custom"], "recipes": {"rope": {"inputs": {"wood": 1}, "station": "workbench"}}}}
    )
    assert tools_for(sent, SETTINGS)[-1]["parameters"]["properties"]["recipe"]["enum"] == ["rope"]
    assert tools_for(AT_WORKBENCH, SETTINGS)[-1]["parameters"]["properties"]["recipe"]["enum"] == ["torch"]
    plain = load_settings(["scene=plain", "scene.tools=[move_to,craft_item,idle]"])
    assert "craft_item" not in _names(_obs(), plain)


def test_the_plain_scene_has_no_crafting_and_move_to_takes_the_scene_bounds() -> None:
    plain = load_settings(["scene=plain", "scene.coordinate_limit=40", "scene.move_targets=coordinates"])
    tools = {t["name"]: t for t in tools_for(AT_APPLE2, plain)}
    assert list(tools) == ["move_to", "idle", "collect"]
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
        ("collect", {"target_name": "Apple2"}, "beyond the scene's collect range 2 (move_to it first)"),  # 2.9 away
        ("craft_item", {"recipe": "sword"}, "not a known recipe"),
        ("craft_item", {"recipe": "torch"}, "needs a 'workbench' station within 2.5"),
        ("explore", {}, "not a tool of scene 'foraging'"),  # the game's SimpleAgent does not carry it out
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
    for observation, tool, params in [
        (AT_APPLE2, "collect", {"target_name": "Apple2"}),
        (AT_WORKBENCH, "craft_item", {"recipe": "torch"}),
        (AT_APPLE2, "move_to", {"target_position": [1.5, 0, -100]}),
        (AT_APPLE2, "idle", {}),
    ]:
        assert game_problem(tool, params, observation, SETTINGS) is None


def test_craft_item_without_the_inputs_is_named() -> None:
    empty = AT_WORKBENCH.model_copy(
        update={"custom": AT_WORKBENCH.custom.model_copy(update={"inventory": {"wood": 1}})}
    )
    assert "needs {'stone': 1} more than held {'wood': 1}" in game_problem(
        "craft_item", {"recipe": "torch"}, empty, SETTINGS
    )


def test_fallback_flees_a_hazard_closer_than_3() -> None:
    obs = _obs(
        position=[2, 0, 1],
        nearby_hazards=[{"name": "Pit", "position": [1, 0, 1], "distance": 1.0}],
        nearby_resources=[{"name": "Apple", "position": [5, 0, 5]}],
    )
    decision = fallback_decision(obs, SETTINGS, "deadline")
    assert (decision.tool, decision.source) == ("move_to", "fallback")
    assert decision.params["target_position"] == [7.0, 0.0, 1.0]  # 5 units straight away from the pit
    assert decision.reasoning == 'fallback: fleeing "Pit" at 1.0 (deadline)'


def test_fallback_then_walks_to_the_closest_resource_then_an_explore_target_then_idles() -> None:
    far_hazard = [{"name": "Pit", "position": [4, 0, 0]}]  # 4 > 3: not fled
    obs = _obs(
        nearby_hazards=far_hazard,
        nearby_resources=[{"name": "Wood", "position": [9, 0, 0]}, {"name": "Apple2", "position": [0, 0, 6]}],
    )
    assert fallback_decision(obs, SETTINGS, "x").params == {"target_position": [0.0, 0.0, 6.0]}
    explore = _obs(
        exploration={
            "explore_targets": [
                {"direction": "east", "distance": 14, "position": [14, 0, 0]},
                {"direction": "north", "distance": 12, "position": [0, 0, -12]},
            ]
        }
    )
    decision = fallback_decision(explore, SETTINGS, "x")
    assert decision.params == {"target_position": [0.0, 0.0, -12.0]} and '"north"' in decision.reasoning
    assert fallback_decision(_obs(), SETTINGS, "x").tool == "idle"


def test_every_fallback_on_the_replay_is_game_executable() -> None:
    for observation in REPLAY:
        decision = fallback_decision(observation, SETTINGS, "late")
        assert game_problem(decision.tool, decision.params, observation, SETTINGS) is None, decision
        assert all(math.isfinite(v) for v in decision.params.get("target_position", []))


@pytest.mark.parametrize(
    ("mode", "narrowed"), [("named", ("move_to", "craft_item", "collect")), ("coordinates", ("craft_item", "collect"))]
)
def test_every_agent_shares_the_system_prompt_and_only_the_narrowed_tools_vary(mode: str, narrowed: tuple) -> None:
    """The cacheable prefix: the system prompt, then tools whose schemas are the same for every agent."""
    from arena_vllm.agent.policy import plan_call

    settings = load_settings([f"scene.move_targets={mode}"])
    plans = [plan_call(observation, settings) for observation in [*REPLAY, AT_WORKBENCH, AT_APPLE2]]
    assert {plan.system_prompt for plan in plans} == {settings.scene.system_prompt}
    shared = [[tool for tool in plan.tools if tool["name"] not in narrowed] for plan in plans]
    assert all(tools == shared[0] for tools in shared)
    if mode == "coordinates":  # named: idle only where move_to has no target (never in the replay)
        assert [t["name"] for t in shared[0]] == ["move_to", "idle"]
        assert all(plan.tools[: len(shared[0])] == shared[0] for plan in plans)
    else:
        assert shared[0] == [] and all(plan.tools[0]["name"] == "move_to" for plan in plans)
