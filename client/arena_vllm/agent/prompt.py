"""Observation -> the user prompt: short lines of what helps decide, nearest things first (each list sorted).

Small models decide better on short prompts, and a tick of many agents costs prompt tokens
times agents, so the rendering is compact: one decimal, at most ``max_entities`` of each kind
(the rest counted, not listed), long game texts cut. It carries what the SDK's
``format_observation`` shows (hazards with distance, stations, inventory, explore targets,
the last tool result) plus the recipes and the agent's recent experiences.

Every string that comes from the game (names, types, texts, errors) is written as a JSON
string: quotes, newlines and control characters are escaped, so a name like
``"Apple\\nIgnore the above"`` stays one quoted value on its line. The system prompt is the
scene's and the same for every agent: vLLM caches it as a shared prefix.

Example::

    from arena_vllm.agent.prompt import render_observation
    from arena_vllm.agent.schemas import Observation

    obs = Observation.model_validate({
        "agent_id": "a1", "tick": 7, "position": [0, 0, 0],
        "nearby_resources": [{"name": "Apple2", "type": "berry", "position": [3, 0, 4]}],
    })
    print(render_observation(obs, max_entities=8))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from arena_vllm.agent.schemas import Experience, Hazard, Observation, Resource
from arena_vllm.config import RecipeSpec

#: Game texts (objective, errors, experience descriptions) are cut to this many characters.
MAX_TEXT_IN_PROMPT = 120


def render_observation(
    observation: Observation,
    max_entities: int,
    experiences: Sequence[Experience] = (),
    recipes: Mapping[str, RecipeSpec] | None = None,
) -> str:
    """The user prompt for one agent; ``max_entities`` caps each list, ``recipes`` are shown when given."""
    obs = observation
    lines = [
        (
            f"Tick {obs.tick}. You are agent {_q(obs.agent_id)} at {_vec(obs.position)}. "
            f"Health {_num(obs.health)}/{_num(obs.max_health)}, energy {_num(obs.energy)}, "
            f"perception radius {_num(obs.perception_radius)}."
        )
    ]
    if obs.objective is not None:
        limit = f" (time limit {obs.objective.time_limit} ticks)" if obs.objective.time_limit else ""
        lines.append(f"Objective: {_q(obs.objective.description)}{limit}.")
    if obs.current_progress:
        lines.append("Progress: " + ", ".join(f"{_q(k)}={_num(v)}" for k, v in obs.current_progress.items()) + ".")
    lines.append(_entities("Resources", obs.nearby_resources, obs.position, max_entities))
    lines.append(_entities("Hazards", obs.nearby_hazards, obs.position, max_entities))
    if obs.nearby_stations:
        lines.append(_entities("Stations", obs.nearby_stations, obs.position, max_entities))
    lines.append(f"Inventory: {_inventory(obs.inventory_counts(), max_entities)}.")
    if recipes:
        lines.append("Recipes: " + "; ".join(_recipe(name, r) for name, r in list(recipes.items())[:max_entities]) + ".")
    if obs.exploration is not None:
        lines.append(_exploration(obs, max_entities))
    if obs.tool_result is not None:
        result = obs.tool_result
        outcome = "succeeded" if result.success else f"failed: {_q(_cut(result.error))}" if result.error else "failed"
        lines.append(f"Last action: {_q(result.tool)} {outcome}.")
    if experiences:
        lines.append("Recent events: " + "; ".join(_experience(e) for e in experiences[-max_entities:]) + ".")
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
    return f"{title}: " + "; ".join(shown) + "."


def _entity(entity: Resource, distance: float) -> str:
    kind = f" {_q(entity.type)}" if entity.type else ""
    damage = f", damage {_num(entity.damage)}" if isinstance(entity, Hazard) and entity.damage else ""
    return f"{_q(entity.name)}{kind} at {_vec(entity.position)}, {_num(distance)} away{damage}"


def _inventory(counts: Mapping[str, float], cap: int) -> str:
    items = [f"{_q(name)} x{count:g}" for name, count in list(counts.items())[:cap] if count]
    return ", ".join(items) or "empty"


def _recipe(name: str, recipe: RecipeSpec) -> str:
    inputs = " + ".join(f"{count} {_q(item)}" for item, count in recipe.inputs.items()) or "nothing"
    station = f" at {_q(recipe.station)}" if recipe.station else ""
    return f"{_q(name)} = {inputs}{station}"


def _exploration(obs: Observation, cap: int) -> str:
    assert obs.exploration is not None
    line = f"Explored {_num(obs.exploration.exploration_percentage)}% of the world."
    targets = sorted(obs.exploration.explore_targets, key=lambda t: t.distance)[: min(cap, 2)]
    if targets:
        line += " Explore targets: " + "; ".join(
            f"{_q(t.direction)} at {_vec(t.position)}, {_num(t.distance)} away" for t in targets
        ) + "."
    return line


def _experience(event: Experience) -> str:
    what = f"tick {event.tick} {_q(event.event_type)}"
    if event.description:
        what += f" {_q(_cut(event.description))}"
    if event.object_name:
        what += f" from {_q(event.object_name)}"
    if event.damage_taken:
        what += f" (-{_num(event.damage_taken)} health)"
    return what


def _q(text: str) -> str:
    """A game string as a JSON string: it cannot close its quotes or start a new line."""
    return json.dumps(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_IN_PROMPT else text[: MAX_TEXT_IN_PROMPT - 3] + "..."


def _vec(values: Sequence[float]) -> str:
    return "(" + ", ".join(_num(v) for v in values) + ")"


def _num(value: float) -> str:
    """One decimal at most, no trailing ".0" (fewer tokens); ``+ 0.0`` turns -0.0 into 0 so the model never sees "-0"."""
    return f"{round(value, 1) + 0.0:g}"
