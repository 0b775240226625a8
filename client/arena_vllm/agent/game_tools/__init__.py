"""The game's tools, one registry entry each: its schema for this agent, the game's check, its words, its wire form.

Every per-tool rule lives in one class registered where it is defined (as vLLM registers its
tool parsers): :mod:`.move_to`, :mod:`.collect`, :mod:`.craft_item`, :mod:`.simple` (``idle``,
``explore``). Callers look an entry up with :func:`game_tool` and never branch on a tool's
name. A new tool is its YAML in ``configs/tools/`` plus one class here.

Each entry answers, for one agent this tick (a :class:`~.situation.Situation`):

- ``schema``: the parameters the model is offered, narrowed to what this agent can do now
  (``None``: not offered this tick);
- ``resolve``: the model's arguments -> the arguments the game receives (a move target's name
  -> ``move_to {target_position}``); ``None`` when they name nothing the agent sees;
- ``problem``: why the game could not carry out those game arguments (its own checks), or None;
- ``describe``: what the call does, in a few words, for the decision's ``reasoning``.

Example::

    from arena_vllm.agent.game_tools import game_tool
    from arena_vllm.agent.game_tools.situation import Situation
    from arena_vllm.agent.schemas import Observation
    from arena_vllm.config import load_settings

    obs = Observation.model_validate({"agent_id": "a1", "position": [0, 0, 0], "nearby_resources": [
        {"name": "Apple2", "type": "berry", "position": [4, 0, 3]}]})
    here = Situation(obs, load_settings())
    move = game_tool("move_to")
    assert move.schema(here)["properties"]["target"]["enum"][0] == "Apple2"
    assert move.resolve({"target": "Apple2"}, here) == {"target_position": [4, 0, 3]}
"""

from __future__ import annotations

from arena_vllm.agent.game_tools.base import GameTool, UnknownGameTool, game_tool, register, registered

# Importing the entries registers them.
from arena_vllm.agent.game_tools import collect, craft_item, move_to, simple  # noqa: E402,F401  isort: skip

__all__ = ["GameTool", "UnknownGameTool", "game_tool", "register", "registered"]
