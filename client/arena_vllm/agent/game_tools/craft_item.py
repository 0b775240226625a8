"""``craft_item``: foraging.gd ``craft_item()`` needs a station of the recipe's type within
``CRAFTING_RADIUS`` and every input held ("Not near a workbench station", "Missing wood")."""

from __future__ import annotations

import json
from typing import Any

from arena_vllm.agent.game_tools.base import GameTool, register
from arena_vllm.agent.game_tools.situation import Situation


@register
class CraftItem(GameTool):
    """Offered only where a recipe can be crafted now: ``recipe`` is an enum of those."""

    name = "craft_item"

    def schema(self, here: Situation) -> dict[str, Any] | None:
        if not here.craftable:
            return None
        parameters = super().schema(here)
        parameters["properties"]["recipe"] = {"enum": here.craftable}
        return parameters

    def problem(self, params: dict[str, Any], here: Situation) -> str | None:
        recipe = params.get("recipe")
        known = here.known_recipes
        if recipe not in known:
            return f"craft_item of {recipe!r}, not a known recipe {sorted(known)}"
        why = here.craft_problem(known[recipe])
        return f"craft_item of {recipe!r} {why}" if why else None

    def describe(self, arguments: dict[str, Any], here: Situation) -> str:
        return f"craft_item {json.dumps(arguments.get('recipe', ''))}"
