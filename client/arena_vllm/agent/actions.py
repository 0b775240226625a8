"""What one agent can do this tick: its tools narrowed to its observation, and whether a decision is game-executable.

The game looks names up exactly (``Apple2``, ``Workbench``) and checks range: the SDK's
``collect`` works "within collection range" and foraging.gd's ``craft_item`` fails unless a
station of the recipe's type is within ``CRAFTING_RADIUS`` and every input is held. So each
agent's tools are built from its own observation: ``collect.target_name`` is an ``enum`` of the
resources within the scene's ``collect_radius``, ``craft_item.recipe`` an ``enum`` of the recipes
it can craft where it stands (``craft_radius``, inputs held), ``move_to``'s coordinates are integers
bounded by the scene (whole units: a number's digits would be unbounded, and ``multipleOf`` is
not supported by xgrammar, vLLM's default structured-output backend), and a tool with nothing
to act on is left out (most ticks an agent gets ``move_to`` and ``idle``: fewer
tools, fewer prompt tokens). Every offered tool set so has a finite longest call
(``backends.tools.max_call_tokens``), which caps the request's ``max_tokens``. With vLLM's constrained decoding the
model can then only produce calls the game can carry out.

Example::

    from arena_vllm.agent.actions import game_problem, tools_for
    from arena_vllm.agent.schemas import Observation
    from arena_vllm.config import load_settings

    settings = load_settings()
    obs = Observation.model_validate({"agent_id": "a1", "position": [0, 0, 0], "nearby_resources": [
        {"name": "Apple2", "type": "berry", "position": [1, 0.5, -1]},
        {"name": "Apple3", "type": "berry", "position": [4, 0.5, -6]}]})
    tools = tools_for(obs, settings)
    assert tools[-1]["parameters"]["properties"]["target_name"]["enum"] == ["Apple2"]  # within 2 units
    assert game_problem("collect", {"target_name": "Apple2"}, obs, settings) is None
    assert "beyond" in game_problem("collect", {"target_name": "Apple3"}, obs, settings)
"""

from __future__ import annotations

import copy
import math
from typing import Any

from arena_vllm.agent.schemas import Observation
from arena_vllm.config import RecipeSpec, Settings

#: Tools whose parameters this module narrows; others pass through as configured.
NARROWED = ("move_to", "collect", "craft_item")


def known_recipes(observation: Observation, settings: Settings) -> dict[str, RecipeSpec]:
    """The recipes the game sent in ``custom.recipes``, else the scene's."""
    if observation.custom.recipes:
        return {name: RecipeSpec(inputs=dict(r.inputs), station=r.station) for name, r in observation.custom.recipes.items()}
    return dict(settings.scene.recipes)


def resource_names(observation: Observation, radius: float | None = None) -> list[str]:
    """Names of the visible resources (within ``radius`` when given), nearest first, each once."""
    ordered = sorted((_distance(observation, r.position, r.distance), r.name) for r in observation.nearby_resources)
    return list(dict.fromkeys(name for distance, name in ordered if radius is None or distance <= radius))


def collectable_names(observation: Observation, settings: Settings) -> list[str]:
    """The resources ``collect`` can take now: within the scene's ``collect_radius``, nearest first."""
    return resource_names(observation, settings.scene.collect_radius)


def craft_problem(recipe: RecipeSpec, observation: Observation, settings: Settings) -> str | None:
    """Why this recipe cannot be crafted where the agent stands (foraging.gd ``craft_item``'s checks), or None."""
    radius = settings.scene.craft_radius
    if radius is None:
        return None
    if recipe.station:
        near = [s for s in observation.nearby_stations
                if s.type == recipe.station and _distance(observation, s.position, s.distance) <= radius]
        if not near:
            return f"needs a {recipe.station!r} station within {radius:g}"
    held = observation.inventory_counts()
    missing = {item: count for item, count in recipe.inputs.items() if held.get(item, 0) < count}
    return f"needs {missing} more than held {held}" if missing else None


def craftable_recipes(observation: Observation, settings: Settings, cap: int | None = None) -> list[str]:
    """The first ``cap`` (default ``agent.max_entities_in_prompt``) known recipes craftable here, sorted: ``craft_item``'s enum."""
    cap = settings.agent.max_entities_in_prompt if cap is None else cap
    known = known_recipes(observation, settings)
    return sorted(name for name, recipe in known.items() if craft_problem(recipe, observation, settings) is None)[:cap]


def recipes_in_sight(observation: Observation, settings: Settings, cap: int | None = None) -> dict[str, RecipeSpec]:
    """The first ``cap`` known recipes (sorted) made at a station the agent sees: what the prompt lists, so it can plan
    a craft where it is going; none when the scene has no ``craft_item`` (prompt tokens are per agent)."""
    cap = settings.agent.max_entities_in_prompt if cap is None else cap
    if "craft_item" not in settings.scene.tools:
        return {}
    seen = {station.type for station in observation.nearby_stations}
    known = known_recipes(observation, settings)
    shown = [name for name in sorted(known) if not known[name].station or known[name].station in seen][:cap]
    return {name: known[name] for name in shown}


def tools_for(observation: Observation, settings: Settings, cap: int | None = None) -> list[dict[str, Any]]:
    """The scene's tools, in the scene's order, narrowed to this observation (flat ``{name, description, parameters}``).

    The enums hold at most ``cap`` (default ``agent.max_entities_in_prompt``) names, nearest
    first: the ones the prompt lists, so 512 visible resources cannot make a 60 KB tool list.
    """
    cap = settings.agent.max_entities_in_prompt if cap is None else cap
    by_name = {tool.name: tool for tool in settings.tools.tools}
    names = collectable_names(observation, settings)[:cap]
    recipes = craftable_recipes(observation, settings, cap)
    limit = settings.scene.coordinate_limit
    tools = []
    for name in settings.scene.tools:
        spec = by_name[name]
        parameters = copy.deepcopy(spec.parameters)
        properties = parameters.get("properties", {})
        if name == "collect":
            if not names:
                continue
            properties["target_name"] = {"enum": names}  # an enum of strings says the type: no "type" tokens
        elif name == "craft_item":
            if not recipes:
                continue
            properties["recipe"] = {"enum": recipes}
        elif name == "move_to":
            target = properties.setdefault("target_position", {"type": "array", "minItems": 3, "maxItems": 3})
            bound = coordinate_bound(limit)
            target["items"] = {"type": "integer", "minimum": -bound, "maximum": bound}
        tools.append({"name": name, "description": spec.description, "parameters": parameters})
    return tools


def game_problem(tool: str, params: dict[str, Any], observation: Observation, settings: Settings) -> str | None:
    """Why the game could not carry out this decision for this agent, or None when it can.

    The checks the game's own code makes: a tool of the scene; ``collect`` of a resource in
    the agent's observation (exact name) within collect range; ``craft_item`` of a known recipe
    at its station with the inputs held; ``move_to`` to three
    finite numbers (integers from the model, as its schema says; the game's Vector3 takes either)
    within the scene's bounds; ``explore`` and ``idle`` take no arguments.
    """
    if tool not in settings.scene.tools:
        return f"{tool!r} is not a tool of scene {settings.scene.name!r} ({settings.scene.tools})"
    if tool == "collect":
        name = params.get("target_name")
        visible = resource_names(observation)
        if name not in visible:
            return f"collect of {name!r}, which is not among the visible resources {visible}"
        if name not in collectable_names(observation, settings):
            return f"collect of {name!r}, beyond the scene's collect range {settings.scene.collect_radius:g} (move_to it first)"
    elif tool == "craft_item":
        recipe = params.get("recipe")
        known = known_recipes(observation, settings)
        if recipe not in known:
            return f"craft_item of {recipe!r}, not a known recipe {sorted(known)}"
        why = craft_problem(known[recipe], observation, settings)
        if why:
            return f"craft_item of {recipe!r} {why}"
    elif tool == "move_to":
        target = params.get("target_position")
        limit = settings.scene.coordinate_limit
        if not (isinstance(target, list) and len(target) == 3 and all(_finite_within(v, limit) for v in target)):
            return f"move_to needs three finite numbers within +-{limit:g}, got {target!r}"
    elif tool in ("explore", "idle") and params:
        return f"{tool} takes no arguments, got {sorted(params)}"
    return None


def coordinate_bound(limit: float) -> int:
    """The largest whole coordinate within ``+-limit`` (move_to's integer bounds; the fallback rounds to them)."""
    return math.floor(limit)


def _finite_within(value: Any, limit: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and abs(value) <= limit


def _distance(observation: Observation, position: list[float], given: float | None) -> float:
    return given if given is not None else math.dist(observation.position, position)
