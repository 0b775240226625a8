"""Replay fixtures: the request bodies Agent Arena's own code builds, reproduced field by field.

Source: github.com/JustInternetAI/AgentArena (read at its HEAD). Each builder names the file and
function whose body it reproduces. The foraging scene's geometry is scenes/foraging.tscn's
(node names and positions), its recipes scripts/foraging.gd's ``RECIPES``, its perception
radius base_scene_controller.gd's default (10.0). Line-of-sight checks are left out (they
need Godot's physics); everything else follows the scripts. The scene has one agent
(``Agent1``); the replay puts 16 agents in it, each with its own observation, as a
multi-agent scene built on the same controller would.

Example::

    from tests.support.game_requests import foraging_ticks

    ticks = foraging_ticks(ticks=3, agents=16)
    assert ticks[0][0]["custom"]["recipes"]["torch"]["station"] == "workbench"
"""

from __future__ import annotations

import json
import math
from typing import Any

#: scenes/foraging.tscn: Resources/*, Hazards/*, Stations/* (name -> global position).
RESOURCES = {
    "Apple": (-5.0, 0.5, 3.0),
    "Apple2": (4.0, 0.5, -6.0),
    "Apple3": (-1.0, 0.5, -5.0),
    "Stone": (7.0, 0.3, 4.0),
    "Stone2": (-8.0, 0.3, -3.0),
    "Wood": (9.0, 0.3, -2.0),
    "Wood2": (-4.0, 0.3, 8.0),
}
HAZARDS = {"Pit": (1.0, 0.0, 1.0), "Pit2": (-3.0, 0.0, -3.0)}
STATIONS = {"Workbench": (12.0, 0.0, 10.0, "workbench"), "Anvil": (-10.0, 0.0, -8.0, "anvil")}
#: scripts/foraging.gd RECIPES.
RECIPES = {
    "torch": {"inputs": {"wood": 1, "stone": 1}, "station": "workbench"},
    "shelter": {"inputs": {"wood": 3, "stone": 2}, "station": "anvil"},
    "meal": {"inputs": {"berry": 2}, "station": "workbench"},
}
#: scripts/base_scene_controller.gd ``@export var perception_radius: float = 10.0``.
PERCEPTION_RADIUS = 10.0


def resource_type(name: str) -> str:
    """scripts/foraging.gd ``_get_resource_type``."""
    if "Berry" in name or "Apple" in name:
        return "berry"
    if "Wood" in name:
        return "wood"
    if "Stone" in name:
        return "stone"
    return "unknown"


def hazard_type(name: str) -> str:
    """scripts/foraging.gd ``_get_hazard_type``."""
    return "fire" if "Fire" in name else "pit" if "Pit" in name else "unknown"


def _seen(
    position: tuple[float, float, float], things: dict[str, tuple], kind: Any, radius: float = PERCEPTION_RADIUS
) -> list[dict[str, Any]]:
    """scripts/foraging.gd ``_build_observations_for_agent``'s loops, then the conversion's
    ``{name, type, distance, position: [x, y, z]}`` (base_scene_controller.gd and foraging.gd
    ``_convert_observation_to_backend_format``)."""
    seen = []
    for name, place in things.items():
        point = place[:3]
        distance = math.dist(position, point)
        if distance > radius:
            continue
        seen.append({"name": name, "type": kind(name, place), "distance": distance, "position": list(point)})
    return seen


def foraging_observe(
    agent_id: str,
    tick: int,
    position: tuple[float, float, float],
    *,
    health: float = 100.0,
    inventory: dict[str, int] | None = None,
    tool_result: dict[str, Any] | None = None,
    exploration: dict[str, Any] | None = None,
    resources: dict[str, tuple] = RESOURCES,
    hazards: dict[str, tuple] = HAZARDS,
    stations: dict[str, tuple] = STATIONS,
    perception_radius: float = PERCEPTION_RADIUS,
) -> dict[str, Any]:
    """The ``POST /observe`` body of the foraging scene (its geometry unless other entities are given,
    in the same ``{name: (x, y, z[, station type])}`` form; tests/support/arena_world.py's layouts do).

    scripts/base_scene_controller.gd ``_convert_observation_to_backend_format`` (agent_id, tick,
    position, health, max_health, perception_radius, nearby_resources, nearby_hazards, then
    ``exploration`` when tracking is on and ``tool_result`` from ``pending_tool_results``),
    extended by scripts/foraging.gd ``_convert_observation_to_backend_format``
    (nearby_stations, custom.inventory, custom.recipes); sent by ``_request_backend_decision``.
    """
    body: dict[str, Any] = {
        "agent_id": agent_id,
        "tick": tick,
        "position": list(position),
        "health": health,
        "max_health": 100.0,
        "perception_radius": perception_radius,
        "nearby_resources": _seen(position, resources, lambda name, _: resource_type(name), perception_radius),
        "nearby_hazards": _seen(position, hazards, lambda name, _: hazard_type(name), perception_radius),
    }
    if exploration is not None:
        body["exploration"] = exploration
    if tool_result is not None:
        body["tool_result"] = tool_result
    body["nearby_stations"] = _seen(position, stations, lambda _, place: place[3], perception_radius)
    body["custom"] = {"inventory": dict(inventory or {}), "recipes": RECIPES}
    return body


def exploration_summary(position: tuple[float, float, float], percentage: float) -> dict[str, Any]:
    """scripts/visibility_tracker.gd ``get_exploration_summary``: frontiers per direction, top-5 targets by distance."""
    offsets = {"north": (0.0, -12.0), "east": (14.0, 0.0), "south": (0.0, 16.0), "west": (-18.0, 0.0)}
    targets = []
    for direction, (dx, dz) in offsets.items():
        target = [position[0] + dx, 0.0, position[2] + dz]
        targets.append({"direction": direction, "distance": math.dist(position, target), "position": target})
    targets.sort(key=lambda t: t["distance"])
    return {
        "exploration_percentage": percentage,
        "total_cells": 1600,
        "seen_cells": int(1600 * percentage / 100),
        "frontiers_by_direction": {t["direction"]: t["distance"] for t in targets},
        "explore_targets": targets[:5],
    }


def tool_result(tool: str, success: bool, result: dict[str, Any], error: str = "", duration: int = 0) -> dict[str, Any]:
    """scripts/base_scene_controller.gd ``_on_agent_tool_completed`` / ``_execute_backend_decision``:
    the ``pending_tool_results`` entry the next observation carries."""
    return {"tool": tool, "success": success, "result": result, "error": error, "duration_ticks": duration}


#: Outcomes the scripts report, one per agent in turn: scripts/simple_agent.gd ``_physics_process``
#: (move_to reached / stuck), foraging.gd ``_collect_resource`` and ``craft_item``, the idle entry.
_OUTCOMES = [
    lambda p: tool_result(
        "move_to",
        True,
        {"success": True, "final_position": list(p), "target_position": list(p), "duration_ticks": 4},
        duration=4,
    ),
    lambda p: tool_result(
        "collect",
        True,
        {"resource_name": "Apple", "resource_type": "berry", "resources_collected": 1, "resources_remaining": 6},
    ),
    lambda p: tool_result(
        "craft_item",
        False,
        {"success": False, "error": "Not near a workbench station (need to be within 2.5 units)"},
        "Not near a workbench station (need to be within 2.5 units)",
    ),
    lambda p: tool_result("idle", True, {}),
    lambda p: tool_result(
        "move_to",
        False,
        {
            "success": False,
            "error": "stuck",
            "final_position": list(p),
            "target_position": [9.0, 0.0, -2.0],
            "distance_remaining": 6.2,
            "duration_ticks": 9,
        },
        "stuck",
        9,
    ),
]


def agent_position(index: int, tick: int) -> tuple[float, float, float]:
    """Agent ``index``'s position at ``tick``: spread over the scene (some see nothing), drifting each tick."""
    ring = 3.0 + 4.0 * (index % 4) + (12.0 if index >= 12 else 0.0)
    angle = index * 2.4 + tick * 0.3
    return (round(ring * math.cos(angle), 3), 0.0, round(ring * math.sin(angle), 3))


def foraging_ticks(ticks: int = 3, agents: int = 16) -> list[list[dict[str, Any]]]:
    """``ticks`` ticks of ``agents`` foraging ``/observe`` bodies; from tick 2 on each carries a tool_result."""
    replay = []
    for tick in range(1, ticks + 1):
        bodies = []
        for n in range(agents):
            position = agent_position(n, tick)
            bodies.append(
                foraging_observe(
                    f"forager_{n:02d}",
                    tick,
                    position,
                    health=100.0 - 2.5 * (n % 5) * tick,
                    inventory={"berry": n % 3, "wood": (n + tick) % 2, "stone": n % 2} if n % 4 else {},
                    tool_result=_OUTCOMES[(n + tick) % len(_OUTCOMES)](position) if tick > 1 else None,
                    exploration=exploration_summary(position, min(100.0, 5.0 * tick + n)) if n % 2 == 0 else None,
                )
            )
        replay.append(bodies)
    return replay


def foraging_at_work(tick: int = 1) -> list[dict[str, Any]]:
    """Agents where ``craft_item`` and ``collect`` work (the replay's ring of agents never stands there): one 1.4 from
    each station holding the inputs of every recipe made there, one 1.4 from each resource (scripts/foraging.gd
    CRAFTING_RADIUS 2.5, COLLECTION_RADIUS 2.0)."""
    bodies = []
    for name, (x, _, z, kind) in STATIONS.items():
        held: dict[str, int] = {}
        for recipe in RECIPES.values():
            if recipe["station"] == kind:
                held.update({item: max(held.get(item, 0), count) for item, count in recipe["inputs"].items()})
        bodies.append(foraging_observe(f"crafter_{name}", tick, (x - 1.0, 0.0, z - 1.0), inventory=held))
    for name, (x, _, z) in RESOURCES.items():
        bodies.append(foraging_observe(f"picker_{name}", tick, (x - 1.0, 0.0, z - 1.0)))
    return bodies


def hazard_experience(
    agent_id: str,
    tick: int,
    position: tuple[float, float, float],
    hazard: str = "Pit2",
    damage: float = 5.0 / 60.0,
    health: float = 72.5,
) -> dict[str, Any]:
    """The ``POST /experience`` body of scripts/hazards/base_hazard.gd ``_report_damage_to_backend``
    (a pit: scripts/hazards/pit.gd sets ``hazard_type = "pit"``, 5 damage per second, one physics frame)."""
    return {
        "agent_id": agent_id,
        "tick": tick,
        "event_type": "damage",
        "description": "Took damage from " + "pit",
        "position": list(position),
        "object_name": hazard,
        "damage_taken": damage,
        "metadata": {"hazard_type": "pit", "agent_health": health},
    }


def ipc_test_perception(agent_id: str, tick: int, n: int = 0) -> dict[str, Any]:
    """One perception as scripts/tests/ipc_test.gd ``_on_tick_advanced`` builds it."""
    return {
        "agent_id": agent_id,
        "tick": tick,
        "position": [1.5 * n, 0.0, 7.25],
        "rotation": [0.0, 30.0 * n, 0.0],
        "velocity": [0.0, 0.0, 0.0],
        "visible_entities": [],
        "inventory": [],
        "health": 100.0,
        "energy": 100.0,
        "custom_data": {},
    }


def cpp_tick(tick: int, perceptions: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``POST /tick`` body of godot/src/agent_arena.cpp ``IPCClient::send_tick_request``."""
    return {"tick": tick, "perceptions": perceptions, "simulation_state": {}}


def cpp_tool_execute(tool: str, params: dict[str, Any], agent_id: str = "", tick: int = 0) -> dict[str, Any]:
    """The ``POST /tools/execute`` body of godot/src/agent_arena.cpp ``IPCClient::_process_next_tool_request``
    (queued by ``execute_tool_sync``): agent_id only when set, tick only when > 0."""
    body: dict[str, Any] = {"tool": tool, "params": params}
    if agent_id:
        body["agent_id"] = agent_id
    if tick > 0:
        body["tick"] = tick
    return body


def longest_calls(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each offered tool's longest valid arguments, made by hand (a random-weight model fills every bound like this)."""
    calls: dict[str, dict[str, Any]] = {}
    for tool in tools:
        properties = tool["parameters"].get("properties", {})
        if tool["name"] == "move_to" and "target" in properties:
            calls["move_to"] = {"target": max(properties["target"]["enum"], key=lambda n: len(json.dumps(n)))}
        elif tool["name"] == "move_to":
            low = properties["target_position"]["items"]["minimum"]
            calls["move_to"] = {"target_position": [low, low, low]}
        elif tool["name"] == "collect":
            calls["collect"] = {"target_name": max(properties["target_name"]["enum"], key=lambda n: len(json.dumps(n)))}
        elif tool["name"] == "craft_item":
            calls["craft_item"] = {"recipe": max(properties["recipe"]["enum"], key=lambda r: len(json.dumps(r)))}
        else:
            calls[tool["name"]] = {}
    return calls
