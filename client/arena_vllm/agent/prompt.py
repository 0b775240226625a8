"""Observation -> the user prompt: a few short lines, nearest things first.

Small models decide better on short prompts, and a tick of many agents costs prompt tokens
times agents, so the rendering is compact: one decimal, nearest resources and hazards first,
at most ``max_entities`` of each kind (the rest counted, not listed). ``visible_entities``
and ``custom`` are left out: the foraging tools act only on resources, hazards and positions.

Example::

    from arena_vllm.agent.prompt import render_observation
    from arena_vllm.agent.schemas import Observation

    obs = Observation.model_validate({
        "agent_id": "a1", "tick": 7, "position": [0, 0, 0],
        "nearby_resources": [{"name": "berry_1", "type": "berry", "position": [3, 0, 4]}],
    })
    print(render_observation(obs, max_entities=8))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from arena_vllm.agent.schemas import Hazard, Observation, Resource


def render_observation(observation: Observation, max_entities: int) -> str:
    """The user prompt for one agent; ``max_entities`` caps resources, hazards and stations each."""
    obs = observation
    lines = [
        (
            f"Tick {obs.tick}. You are agent {obs.agent_id} at {_vec(obs.position)}. "
            f"Health {_num(obs.health)}, energy {_num(obs.energy)}, perception radius {_num(obs.perception_radius)}."
        )
    ]
    if obs.objective is not None:
        limit = f" (time limit {obs.objective.time_limit} ticks)" if obs.objective.time_limit else ""
        lines.append(f"Objective: {obs.objective.description}{limit}.")
    if obs.current_progress:
        lines.append("Progress: " + ", ".join(f"{k}={_num(v)}" for k, v in obs.current_progress.items()) + ".")
    lines.append(_entities("Resources", obs.nearby_resources, obs.position, max_entities))
    lines.append(_entities("Hazards", obs.nearby_hazards, obs.position, max_entities))
    if obs.nearby_stations:
        lines.append(_entities("Stations", obs.nearby_stations, obs.position, max_entities))
    lines.append(f"Inventory: {_inventory(obs)}.")
    if obs.exploration is not None:
        lines.append(f"Explored {_num(obs.exploration.exploration_percentage)}% of the world.")
    return "\n".join(lines)


def _entities(title: str, entities: Sequence[Resource], origin: Sequence[float], cap: int) -> str:
    """One line of the ``cap`` nearest entities, distance computed from positions when not given."""
    if not entities:
        return f"{title}: none in sight."
    by_distance = sorted(
        ((e.distance if e.distance is not None else math.dist(origin, e.position), e) for e in entities),
        key=lambda pair: pair[0],
    )
    shown = [_entity(entity, distance) for distance, entity in by_distance[:cap]]
    hidden = len(by_distance) - len(shown)
    if hidden:
        shown.append(f"{hidden} more not listed")
    return f"{title} (nearest first): " + "; ".join(shown) + "."


def _entity(entity: Resource, distance: float) -> str:
    kind = f" ({entity.type})" if entity.type else ""
    damage = f", damage {_num(entity.damage)}" if isinstance(entity, Hazard) and entity.damage else ""
    return f"{entity.name}{kind} at {_vec(entity.position)}, {_num(distance)} away{damage}"


def _inventory(obs: Observation) -> str:
    if isinstance(obs.inventory, dict):
        items = [f"{name} x{_num(count)}" for name, count in obs.inventory.items()]
    else:
        items = [f"{item.name} x{item.quantity}" for item in obs.inventory]
    return ", ".join(items) or "empty"


def _vec(values: Sequence[float]) -> str:
    return "(" + ", ".join(_num(v) for v in values) + ")"


def _num(value: float) -> str:
    """One decimal; ``+ 0.0`` turns -0.0 into 0.0 so the model never sees "-0.0"."""
    return f"{round(value, 1) + 0.0:.1f}"
