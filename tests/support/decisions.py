"""What a decision from the model looks like to the game, shared by the stack tests.

Example::

    assert_model_decision({"tool": "idle", "params": {}, "reasoning": "model: idle", "source": "native"})
"""

from __future__ import annotations

import jsonschema

from arena_vllm.config import load_settings

TOOLS = {tool.name: tool.parameters for tool in load_settings().tools.tools}
#: What the game's ``move_to`` takes: a Vector3 of any numbers (the agent resolves a named target to the
#: thing's position, or a point routed around a hazard; whole units bound only the model's own coordinates).
WIRE = {
    **TOOLS,
    "move_to": {
        **TOOLS["move_to"],
        "properties": {"target_position": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}},
    },
}


def assert_model_decision(decision: dict) -> None:
    """A configured tool, params valid against what the game takes, and made by the model (``source``, not the fallback)."""
    assert decision["tool"] in WIRE, decision
    jsonschema.validate(decision["params"], WIRE[decision["tool"]])
    assert decision["source"] == "native" and decision["reasoning"].startswith("model: "), decision
