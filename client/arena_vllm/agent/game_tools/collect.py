"""``collect``: the SDK's "must be within collection range" (foraging.gd ``COLLECTION_RADIUS``)."""

from __future__ import annotations

import json
from typing import Any

from arena_vllm.agent.game_tools.base import GameTool, register
from arena_vllm.agent.game_tools.situation import Situation


@register
class Collect(GameTool):
    """Offered only with resources in reach: ``target_name`` is an enum of their exact names, nearest first."""

    name = "collect"

    def schema(self, here: Situation) -> dict[str, Any] | None:
        names = here.collectable[: here.cap]
        if not names:
            return None
        parameters = super().schema(here)
        parameters["properties"]["target_name"] = {"enum": names}  # an enum of strings says the type: no "type" tokens
        return parameters

    def problem(self, params: dict[str, Any], here: Situation) -> str | None:
        name = params.get("target_name")
        visible = here.resource_names()
        if name not in visible:
            return f"collect of {name!r}, which is not among the visible resources {visible}"
        if name not in here.collectable:
            return f"collect of {name!r}, beyond the scene's collect range {here.settings.scene.collect_radius:g} (move_to it first)"
        return None

    def describe(self, arguments: dict[str, Any], here: Situation) -> str:
        name = arguments.get("target_name", "")
        found = next((r for r in here.observation.nearby_resources if r.name == name), None)
        where = f", {here.distance(found):.1f} away" if found else ""
        return f"collect {json.dumps(name)}{where}"
