"""move_to by name: what is offered, in which order, and where each name takes the agent (the game's target_position)."""

from __future__ import annotations

import math

from arena_vllm.agent.actions import game_problem, resolve_call, tools_for
from arena_vllm.agent.fallback import fallback_decision
from arena_vllm.agent.game_tools import UnknownGameTool, game_tool, registered
from arena_vllm.agent.game_tools.move_to import REACH, move_targets
from arena_vllm.agent.game_tools.situation import Situation
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import load_settings

SETTINGS = load_settings()
RADIUS = SETTINGS.scene.hazard_radius


def _obs(**fields: object) -> Observation:
    return Observation.model_validate({"agent_id": "a", "position": [0, 1, 0], **fields})


def _targets(observation: Observation) -> list[str]:
    move = next(tool for tool in tools_for(observation, SETTINGS) if tool["name"] == "move_to")
    return move["parameters"]["properties"]["target"]["enum"]


def _goal(observation: Observation, name: str) -> list[float]:
    params = resolve_call("move_to", {"target": name}, observation, SETTINGS)
    assert params is not None and game_problem("move_to", params, observation, SETTINGS) is None
    return params["target_position"]


def _gap_to(hazard: list[float], start: list[float], end: list[float]) -> float:
    """The closest the straight way start -> end comes to ``hazard`` on the ground plane."""
    (px, pz), (ex, ez), (hx, hz) = (start[0], start[2]), (end[0], end[2]), (hazard[0], hazard[2])
    dx, dz = ex - px, ez - pz
    t = max(0.0, min(1.0, ((hx - px) * dx + (hz - pz) * dz) / ((dx * dx + dz * dz) or 1.0)))
    return math.hypot(px + t * dx - hx, pz + t * dz - hz)


def test_every_tool_of_the_tool_set_has_one_registry_entry() -> None:
    assert registered() == sorted(tool.name for tool in SETTINGS.tools.tools)
    try:
        game_tool("teleport")
    except UnknownGameTool as exc:
        assert "teleport" in str(exc)
    else:
        raise AssertionError("an unknown tool has an entry")


def test_danger_first_then_things_nearest_first_then_the_frontier() -> None:
    obs = _obs(
        nearby_hazards=[{"name": "Fire", "position": [2, 0, 0]}, {"name": "Pit", "position": [20, 0, 0]}],
        nearby_resources=[{"name": "Far", "position": [0, 0, 9]}, {"name": "Near", "position": [0, 0, -4]}],
        nearby_stations=[{"name": "Workbench", "type": "workbench", "position": [-6, 0, 0]}],
        exploration={"explore_targets": [{"direction": "east", "distance": 12, "position": [12, 0, 0]}]},
    )
    assert _targets(obs) == ["away from Fire", "Near", "Far", "Workbench", "explore"]  # Pit: 20 away, not fled


def test_a_thing_is_reached_at_the_agents_height_and_a_blind_step_only_when_nothing_is_in_sight() -> None:
    obs = _obs(nearby_resources=[{"name": "Apple", "position": [4, 0.5, 3]}])
    assert _goal(obs, "Apple") == [4.0, 1.0, 3.0]  # y from the agent: the game's y is up
    assert "explore" not in _targets(obs)
    assert _targets(_obs()) == ["explore"] and _goal(_obs(), "explore") == [10.0, 1.0, 0.0]  # the SDK's +X
    assert fallback_decision(_obs(), SETTINGS, "x").tool == "idle"  # the fallback does not walk blind


def test_fleeing_goes_flee_step_straight_away() -> None:
    obs = _obs(position=[2, 0, 1], nearby_hazards=[{"name": "Pit", "position": [1, 0, 1]}])
    assert _goal(obs, "away from Pit") == [7.0, 0.0, 1.0]


def test_a_way_through_a_hazard_is_turned_so_it_keeps_clear() -> None:
    fire = [5.0, 0.0, 0.2]
    obs = _obs(
        position=[0, 0, 0],
        nearby_hazards=[{"name": "Fire", "position": fire}],
        nearby_resources=[{"name": "Apple", "position": [12, 0, 0]}],
    )
    step = _goal(obs, "Apple")
    assert step != [12.0, 0.0, 0.0] and math.dist(step, [0, 0, 0]) <= 3.0 + 1e-6  # a detour point ahead
    assert _gap_to(fire, [0, 0, 0], step) >= RADIUS  # the way there stays out of the damage radius
    clear = _obs(
        position=[0, 0, 0],
        nearby_hazards=[{"name": "Fire", "position": [5, 0, 8]}],
        nearby_resources=[{"name": "Apple", "position": [12, 0, 0]}],
    )
    assert _goal(clear, "Apple") == [12.0, 0.0, 0.0]  # nothing in the way: straight there


def test_a_thing_next_to_a_hazard_is_taken_from_its_far_side() -> None:
    obs = _obs(
        position=[-10, 0, 0],
        nearby_hazards=[{"name": "Fire", "position": [0, 0, 0]}],
        nearby_resources=[{"name": "Wood", "position": [2, 0, 0]}],
    )
    target = move_targets(Situation(obs, SETTINGS))["Wood"]
    assert math.dist(target.goal, [2 + REACH, 0, 0]) < 1e-9  # within pickup reach, farther from the fire
    assert math.dist(target.goal, [0, 0, 0]) > RADIUS


def test_a_name_not_in_sight_resolves_to_nothing() -> None:
    obs = _obs(nearby_resources=[{"name": "Apple", "position": [4, 0, 3]}])
    assert resolve_call("move_to", {"target": "Atlantis"}, obs, SETTINGS) is None


def test_coordinates_mode_passes_the_models_coordinates_through() -> None:
    coordinates = load_settings(["scene.move_targets=coordinates"])
    obs = _obs(nearby_resources=[{"name": "Apple", "position": [4, 0, 3]}])
    move = next(tool for tool in tools_for(obs, coordinates) if tool["name"] == "move_to")
    assert move["parameters"]["properties"]["target_position"]["items"]["type"] == "integer"
    assert resolve_call("move_to", {"target_position": [1, 2, 3]}, obs, coordinates) == {"target_position": [1, 2, 3]}
