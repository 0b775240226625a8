"""The decision when the model fails or is late: keep the agent moving, in the Agent Arena SDK's order.

``FrameworkAdapter.fallback_decision`` (python/sdk/agent_arena_sdk/adapters/base.py) flees a
hazard closer than 3 units, else moves to the closest resource, else to the nearest explore
target. Where the SDK then walks +X blindly, this answers ``idle``: only when nothing better
exists. Targets are clamped to the scene's bounds, so the fallback is game-executable too.

Example::

    from arena_vllm.agent.fallback import fallback_decision
    from arena_vllm.agent.schemas import Observation
    from arena_vllm.config import load_settings

    obs = Observation.model_validate({"agent_id": "a1", "position": [0, 0, 0], "nearby_hazards": [
        {"name": "Pit2", "type": "pit", "position": [1, 0, 1]}]})
    decision = fallback_decision(obs, load_settings(), "the model was late")
    assert decision.tool == "move_to" and decision.reasoning.startswith('fallback: fleeing "Pit2"')
"""

from __future__ import annotations

import json
import math

from arena_vllm.agent.actions import coordinate_bound
from arena_vllm.agent.schemas import Decision, Observation
from arena_vllm.config import Settings

#: ``reasoning`` is bounded: a failure message can be long.
MAX_REASONING_CHARS = 300


def fallback_decision(observation: Observation, settings: Settings, why: str) -> Decision:
    """Flee, closest resource, explore target, idle; ``why`` (the model's failure) ends the reasoning."""
    obs = observation
    limit = settings.scene.coordinate_limit
    rules = settings.agent.fallback

    def decided(tool: str, params: dict, what: str) -> Decision:
        return Decision(tool=tool, params=params, reasoning=_bounded(f"fallback: {what} ({why})"), source="fallback")

    hazards = [(_dist(obs, h.position, h.distance), h) for h in obs.nearby_hazards]
    if hazards:
        distance, hazard = min(hazards, key=lambda pair: pair[0])
        if distance < rules.flee_distance:
            px, py, pz = obs.position
            dx, dz = px - hazard.position[0], pz - hazard.position[2]
            norm = max(math.hypot(dx, dz), 0.1)
            if math.hypot(dx, dz) < 1e-6:  # standing on it: any direction is away
                dx, norm = 1.0, 1.0
            target = [px + dx / norm * rules.flee_step, py, pz + dz / norm * rules.flee_step]
            return decided("move_to", {"target_position": _clamp(target, limit)},
                           f"fleeing {_q(hazard.name)} at {distance:.1f}")
    resources = [(_dist(obs, r.position, r.distance), r) for r in obs.nearby_resources]
    if resources and "move_to" in settings.scene.tools:
        distance, resource = min(resources, key=lambda pair: pair[0])
        return decided("move_to", {"target_position": _clamp(resource.position, limit)},
                       f"moving to {_q(resource.name)} at {distance:.1f}")
    targets = obs.exploration.explore_targets if obs.exploration is not None else []
    if targets and "move_to" in settings.scene.tools:
        best = min(targets, key=lambda t: t.distance)
        return decided("move_to", {"target_position": _clamp(best.position, limit)},
                       f"exploring {_q(best.direction)} at {best.distance:.1f}")
    return decided("idle", {}, "idle, nothing in sight to move to")


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_REASONING_CHARS else text[: MAX_REASONING_CHARS - 3] + "..."


def _q(text: str) -> str:
    """A game string, JSON-quoted: it cannot break the line it is in."""
    return json.dumps(text)


def _dist(obs: Observation, position: list[float], given: float | None) -> float:
    return given if given is not None else math.dist(obs.position, position)


def _clamp(position: list[float], limit: float) -> list[int]:
    """Whole units within the scene's bounds: the same form move_to's schema gives the model."""
    bound = coordinate_bound(limit)
    return [max(-bound, min(bound, round(v))) for v in position]
