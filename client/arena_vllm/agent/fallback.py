"""The decision when the model fails or is late: keep the agent moving, in the Agent Arena SDK's order.

``FrameworkAdapter.fallback_decision`` (python/sdk/agent_arena_sdk/adapters/base.py) flees a
hazard closer than 3 units, else moves to the closest resource, else to the nearest explore
target, else 10 units along +X. This takes the same places from ``move_to``'s named targets
(:mod:`arena_vllm.agent.game_tools.move_to`), so a fallback move is resolved, routed around
hazards and bounded exactly as the model's would be. Where the SDK then walks +X blindly, this
answers ``idle`` (the model may still choose that step: it is offered as ``explore``).

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

from arena_vllm.agent.game_tools.move_to import move_targets, wire
from arena_vllm.agent.game_tools.situation import Situation
from arena_vllm.agent.schemas import Decision, Observation
from arena_vllm.config import Settings

#: ``reasoning`` is bounded: a failure message can be long.
MAX_REASONING_CHARS = 300
#: The SDK's order, and how the reasoning says each.
_ORDER = {"flee": "fleeing", "resource": "moving to", "explore": "exploring"}


def fallback_decision(observation: Observation, settings: Settings, why: str) -> Decision:
    """Flee, closest resource, explore target, idle; ``why`` (the model's failure) ends the reasoning."""
    if "move_to" in settings.scene.tools:
        here = Situation(observation, settings)
        targets = list(move_targets(here).values())  # each kind nearest first
        for kind, doing in _ORDER.items():
            target = next((t for t in targets if t.kind == kind), None)
            if target is not None:
                what = f"{doing} {json.dumps(target.about)} at {target.distance:.1f}"
                return Decision(
                    tool="move_to",
                    params=wire(here, target),
                    reasoning=bounded(f"fallback: {what} ({why})"),
                    source="fallback",
                )
    return Decision(
        tool="idle",
        params={},
        reasoning=bounded(f"fallback: idle, nothing in sight to move to ({why})"),
        source="fallback",
    )


def bounded(text: str) -> str:
    """``text`` within :data:`MAX_REASONING_CHARS`."""
    return text if len(text) <= MAX_REASONING_CHARS else text[: MAX_REASONING_CHARS - 3] + "..."
