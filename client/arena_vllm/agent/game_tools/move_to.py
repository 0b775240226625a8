"""``move_to``: the model picks *where* by name; the agent works out *how* and sends the game a position.

A small model cannot use coordinates (SmolLM2-135M wrote ``[1,2,3]`` and ``[-100,-100,100]``,
y being up), but it can pick a name from a short list. With ``scene.move_targets: named`` the
model is offered ``target``: an enum of what this agent sees, in this order:

- ``away from <hazard>`` for each hazard closer than ``agent.fallback.flee_distance`` (danger first);
- each resource and each station by its exact name, nearest first;
- ``explore``: the nearest frontier the game reports, else, with nothing else to go to, a step
  of 10 along +X (the SDK's last resort, python/sdk/agent_arena_sdk/adapters/base.py
  ``fallback_decision``).

The agent resolves the name into the game's unchanged ``move_to {target_position}``: the
thing's position at the agent's own height, or a point ``flee_step`` away from the hazard.
Where the straight line to it passes closer than ``scene.hazard_radius`` to a hazard in sight,
the position sent is a waypoint beside that hazard instead; each tick re-plans from where the
agent then stands. ``scene.move_targets: coordinates`` offers bounded integer coordinates
instead, passed through as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from arena_vllm.agent.game_tools.base import GameTool, register
from arena_vllm.agent.game_tools.situation import Situation

#: The SDK's last-resort explore step (+X, 10 units).
BLIND_EXPLORE_STEP = (10.0, 0.0, 0.0)
#: A routed way keeps this much more than ``scene.hazard_radius`` from a hazard's centre.
DETOUR_MARGIN = 0.5
#: How far ahead a detour point lies, and the turns tried to find one (each side, smallest first).
LOOKAHEAD = 3.0
TURN_STEP_DEGREES = 15
#: Where the agent stands to take a thing next to a hazard: this close to it, within MockArena's pickup
#: radius (1.5, python/sdk/agent_arena_sdk/testing.py) and foraging.gd's COLLECTION_RADIUS (2.0).
REACH = 1.4
#: The target names that are not the game's own.
EXPLORE = "explore"
AWAY_FROM = "away from "


@dataclass(frozen=True)
class MoveTarget:
    """A place ``move_to`` can be sent: ``goal`` in the game's coordinates, ``distance`` to the thing it is named
    after, ``about`` that thing's name (a frontier's direction)."""

    label: str
    kind: Literal["flee", "resource", "station", "explore", "wander"]
    about: str
    goal: tuple[float, float, float]
    distance: float


def move_targets(here: Situation) -> dict[str, MoveTarget]:
    """The named targets of this agent now, in offer order (each list capped at ``here.cap``)."""
    return here.memo("move_targets", lambda: _targets(here))


def _targets(here: Situation) -> dict[str, MoveTarget]:
    obs = here.observation
    px, py, pz = obs.position
    rules = here.settings.agent.fallback
    found: dict[str, MoveTarget] = {}

    def add(target: MoveTarget) -> None:
        found.setdefault(target.label, target)  # a name the game repeats keeps its nearest entity

    for distance, hazard in here.nearest_first(obs.nearby_hazards)[: here.cap]:
        if distance < rules.flee_distance:
            add(
                MoveTarget(
                    AWAY_FROM + hazard.name,
                    "flee",
                    hazard.name,
                    flee_goal(obs.position, hazard.position, rules.flee_step),
                    distance,
                )
            )
    for kind, entities in (("resource", obs.nearby_resources), ("station", obs.nearby_stations)):
        for distance, entity in here.nearest_first(entities)[: here.cap]:
            add(MoveTarget(entity.name, kind, entity.name, approach(here, entity.position), distance))
    frontiers = obs.exploration.explore_targets if obs.exploration is not None else []
    if frontiers and here.cap:
        nearest = min(frontiers, key=lambda t: t.distance)
        add(MoveTarget(EXPLORE, "explore", nearest.direction, tuple(nearest.position), nearest.distance))
    elif not found:
        dx, dy, dz = BLIND_EXPLORE_STEP
        add(MoveTarget(EXPLORE, "wander", "+X", (px + dx, py + dy, pz + dz), math.hypot(dx, dy, dz)))
    return found


def flee_goal(position: list[float], hazard: list[float], step: float) -> tuple[float, float, float]:
    """``step`` away from the hazard on the ground plane (the SDK's fallback); any direction when standing on it."""
    px, py, pz = position
    dx, dz = px - hazard[0], pz - hazard[2]
    norm = math.hypot(dx, dz)
    if norm < 1e-6:
        dx, dz, norm = 1.0, 0.0, 1.0
    return (px + dx / norm * step, py, pz + dz / norm * step)


def approach(here: Situation, position: list[float]) -> tuple[float, float, float]:
    """Where to stand to take a thing at ``position``: on it, or, when a hazard is near it, :data:`REACH` from it
    on the side away from that hazard (every thing lies 1.5 or more from a hazard, so that spot is outside
    its damage radius wherever the thing itself is more than ``hazard_radius - REACH`` from it)."""
    x, _, z = position
    near = [
        h
        for h in here.observation.nearby_hazards
        if math.hypot(x - h.position[0], z - h.position[2]) < here.settings.scene.hazard_radius + REACH
    ]
    if near:
        hazard = min(near, key=lambda h: math.hypot(x - h.position[0], z - h.position[2]))
        dx, dz = x - hazard.position[0], z - hazard.position[2]
        norm = math.hypot(dx, dz) or 1.0
        x, z = x + dx / norm * REACH, z + dz / norm * REACH
    return (x, here.observation.position[1], z)


def route(here: Situation, goal: tuple[float, float, float]) -> tuple[float, float, float]:
    """``goal``, or a point up to :data:`LOOKAHEAD` along the smallest turn whose straight way stays out of every
    hazard's damage radius (+ :data:`DETOUR_MARGIN`); each tick re-plans from where the agent then stands.

    A hazard with the goal itself within that radius is kept as far off as the goal is: getting there means
    going in that far. From inside a hazard's radius, a way counts as clear of it when it ends farther from it.
    """
    px, py, pz = here.observation.position
    gx, gz = goal[0], goal[2]
    radius = here.settings.scene.hazard_radius + DETOUR_MARGIN
    hazards = [
        (hx, hz, min(radius, 0.95 * math.hypot(gx - hx, gz - hz)))
        for hx, _, hz in (h.position for h in here.observation.nearby_hazards)
    ]

    def clear(ex: float, ez: float) -> bool:
        for hx, hz, keep in hazards:
            inside = math.hypot(px - hx, pz - hz) < keep
            if (
                (math.hypot(ex - hx, ez - hz) <= math.hypot(px - hx, pz - hz))
                if inside
                else _gap(px, pz, ex, ez, hx, hz) < keep
            ):
                return False
        return True

    if clear(gx, gz):
        return goal
    length = min(math.hypot(gx - px, gz - pz), LOOKAHEAD)
    heading = math.atan2(gz - pz, gx - px)
    for turn in range(TURN_STEP_DEGREES, 181, TURN_STEP_DEGREES):
        for side in (1, -1):
            angle = heading + side * math.radians(turn)
            ex, ez = px + length * math.cos(angle), pz + length * math.sin(angle)
            if clear(ex, ez):
                return (ex, py, ez)
    return goal


def _gap(px: float, pz: float, ex: float, ez: float, hx: float, hz: float) -> float:
    """The closest the straight way from P to E comes to H (ground plane)."""
    dx, dz = ex - px, ez - pz
    length2 = dx * dx + dz * dz
    t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((hx - px) * dx + (hz - pz) * dz) / length2))
    return math.hypot(px + t * dx - hx, pz + t * dz - hz)


def wire(here: Situation, target: MoveTarget) -> dict[str, Any]:
    """The game's ``move_to`` arguments for going to ``target``: routed around hazards (fleeing is not), within the
    scene's bounds."""
    point = target.goal if target.kind == "flee" else route(here, target.goal)
    limit = here.settings.scene.coordinate_limit
    return {"target_position": [round(max(-limit, min(limit, v)), 2) + 0.0 for v in point]}


def coordinate_bound(limit: float) -> int:
    """The largest whole coordinate within ``+-limit`` (the model's integer coordinates in ``coordinates`` mode)."""
    return math.floor(limit)


@register
class MoveTo(GameTool):
    """Named targets (``scene.move_targets: named``) or bounded integer coordinates (``coordinates``)."""

    name = "move_to"

    def schema(self, here: Situation) -> dict[str, Any] | None:
        if here.settings.scene.move_targets == "coordinates":
            parameters = super().schema(here)
            target = parameters["properties"].setdefault(
                "target_position", {"type": "array", "minItems": 3, "maxItems": 3}
            )
            bound = coordinate_bound(here.settings.scene.coordinate_limit)
            target["items"] = {"type": "integer", "minimum": -bound, "maximum": bound}
            return parameters
        labels = list(move_targets(here))
        if not labels:
            return None
        return {
            "type": "object",
            "properties": {"target": {"enum": labels}},
            "required": ["target"],
            "additionalProperties": False,
        }

    def resolve(self, arguments: dict[str, Any], here: Situation) -> dict[str, Any] | None:
        if here.settings.scene.move_targets == "coordinates":
            return arguments
        target = move_targets(here).get(arguments.get("target"))
        return None if target is None else wire(here, target)

    def problem(self, params: dict[str, Any], here: Situation) -> str | None:
        target = params.get("target_position")
        limit = here.settings.scene.coordinate_limit
        if not (isinstance(target, list) and len(target) == 3 and all(_finite_within(v, limit) for v in target)):
            return f"move_to needs three finite numbers within +-{limit:g}, got {target!r}"
        return None

    def describe(self, arguments: dict[str, Any], here: Situation) -> str:
        if "target" in arguments:
            target = move_targets(here).get(arguments["target"])
            away = f", {target.distance:.1f} away" if target is not None else ""
            return f"move_to {json.dumps(arguments['target'])}{away}"
        goal = arguments.get("target_position") or [0.0, 0.0, 0.0]
        obs = here.observation
        named = [*obs.nearby_resources, *obs.nearby_stations, *obs.nearby_hazards]
        near = min(named, key=lambda e: math.dist(e.position, goal), default=None)
        toward = (
            f" toward {json.dumps(near.name)}" if near is not None and math.dist(near.position, goal) <= 2.0 else ""
        )
        return f"move_to ({', '.join(f'{v:.1f}' for v in goal)}), {math.dist(obs.position, goal):.1f} away{toward}"


def _finite_within(value: Any, limit: float) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and abs(value) <= limit
    )
