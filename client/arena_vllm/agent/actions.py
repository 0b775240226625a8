"""What one agent can do this tick, and whether a decision is game-executable: the scene's tools through the registry.

Each tool's rules live in its entry of :mod:`arena_vllm.agent.game_tools`; this module walks
the scene's tools in the scene's order. ``collect.target_name`` is an enum of the resources
within the scene's ``collect_radius``, ``craft_item.recipe`` an enum of the recipes craftable
where the agent stands, ``move_to.target`` an enum of the places it can go by name (or bounded
integer coordinates with ``scene.move_targets: coordinates``), and a tool with nothing to act on
is left out. Every offered tool set so has a finite longest call
(``backends.call_bound.max_call_tokens``), and with vLLM's constrained decoding the model can only
produce calls the game can carry out.

Example::

    from arena_vllm.agent.actions import game_problem, resolve_call, tools_for
    from arena_vllm.agent.schemas import Observation
    from arena_vllm.config import load_settings

    settings = load_settings()
    obs = Observation.model_validate({"agent_id": "a1", "position": [0, 0, 0], "nearby_resources": [
        {"name": "Apple2", "type": "berry", "position": [1, 0.5, -1]},
        {"name": "Apple3", "type": "berry", "position": [4, 0.5, -6]}]})
    tools = tools_for(obs, settings)
    assert tools[-1]["parameters"]["properties"]["target_name"]["enum"] == ["Apple2"]  # within 2 units
    assert resolve_call("move_to", {"target": "Apple3"}, obs, settings) == {"target_position": [4.0, 0.0, -6.0]}
    assert game_problem("collect", {"target_name": "Apple2"}, obs, settings) is None
    assert "beyond" in game_problem("collect", {"target_name": "Apple3"}, obs, settings)
"""

from __future__ import annotations

from typing import Any

from arena_vllm.agent.game_tools import game_tool
from arena_vllm.agent.game_tools.situation import Situation, resource_names
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import Settings

__all__ = ["game_problem", "resolve_call", "resource_names", "tools_for", "tools_in"]


def tools_for(observation: Observation, settings: Settings, cap: int | None = None) -> list[dict[str, Any]]:
    """The scene's tools, in the scene's order, narrowed to this observation (flat ``{name, description, parameters}``).

    The enums hold at most ``cap`` (default ``agent.max_entities_in_prompt``) names of each
    kind, nearest first: the ones the prompt lists, so 512 visible resources cannot make a 60 KB tool list.
    """
    return tools_in(Situation(observation, settings, cap))


def tools_in(here: Situation) -> list[dict[str, Any]]:
    """:func:`tools_for` from a situation already built (the policy builds one per decision and checks the call in it)."""
    tools = []
    for name in here.settings.scene.tools:
        parameters = game_tool(name).schema(here)
        if parameters is not None:
            tools.append({"name": name, "description": here.spec(name).description, "parameters": parameters})
    return tools


def resolve_call(
    tool: str, arguments: dict[str, Any], observation: Observation, settings: Settings
) -> dict[str, Any] | None:
    """The game's arguments for the model's call (a move target's name -> ``target_position``); None if it names
    nothing this agent sees."""
    return game_tool(tool).resolve(arguments, Situation(observation, settings))


def game_problem(tool: str, params: dict[str, Any], observation: Observation, settings: Settings) -> str | None:
    """Why the game could not carry out this decision (the game's arguments) for this agent, or None when it can.

    The checks the game's own code makes (each in its tool's entry): a tool of the scene;
    ``collect`` of a visible resource within collect range; ``craft_item`` of a known recipe at
    its station with the inputs held; ``move_to`` to three finite numbers within the scene's
    bounds; ``explore`` and ``idle`` take no arguments.
    """
    if tool not in settings.scene.tools:
        return f"{tool!r} is not a tool of scene {settings.scene.name!r} ({settings.scene.tools})"
    return game_tool(tool).problem(params, Situation(observation, settings))
