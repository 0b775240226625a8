"""Tools that take no arguments: ``idle`` and ``explore`` (the SDK's; a scene picks which it offers)."""

from __future__ import annotations

from typing import Any

from arena_vllm.agent.game_tools.base import GameTool, register
from arena_vllm.agent.game_tools.move_to import move_targets
from arena_vllm.agent.game_tools.situation import Situation


class _NoArguments(GameTool):
    def problem(self, params: dict[str, Any], here: Situation) -> str | None:
        return f"{self.name} takes no arguments, got {sorted(params)}" if params else None


@register
class Idle(_NoArguments):
    """Stay put this tick: offered only where ``move_to`` has no named target (with named targets it always has one).

    A small model picks ``idle`` when it is offered (SmolLM2-135M: 57 of 64 observations along
    the episodes, with resources in sight); the fallback still idles where nothing is in sight.
    """

    name = "idle"

    def schema(self, here: Situation) -> dict[str, Any] | None:
        scene = here.settings.scene
        if "move_to" in scene.tools and scene.move_targets == "named" and move_targets(here):
            return None
        return super().schema(here)


@register
class Explore(_NoArguments):
    """The SDK's ``explore``; scripts/simple_agent.gd has no branch for it, so no shipped scene offers it."""

    name = "explore"
