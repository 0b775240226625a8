"""What a decision from the model looks like to the game, shared by the stack tests.

Example::

    assert_model_decision({"tool": "idle", "params": {}, "reasoning": "model: idle", "source": "native"})
"""

from __future__ import annotations

import jsonschema
from arena_vllm.config import load_settings

TOOLS = {tool.name: tool.parameters for tool in load_settings().tools.tools}


def assert_model_decision(decision: dict) -> None:
    """A configured tool, params valid against its schema, and made by the model (``source``, not the fallback)."""
    assert decision["tool"] in TOOLS, decision
    jsonschema.validate(decision["params"], TOOLS[decision["tool"]])
    assert decision["source"] == "native" and decision["reasoning"].startswith("model: "), decision
