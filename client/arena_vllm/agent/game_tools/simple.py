"""Tools that take no arguments: ``idle`` and ``explore`` (the SDK's; a scene picks which it offers)."""

from __future__ import annotations

from typing import Any

from arena_vllm.agent.game_tools.base import GameTool, register
from arena_vllm.agent.game_tools.situation import Situation


class _NoArguments(GameTool):
    def problem(self, params: dict[str, Any], here: Situation) -> str | None:
        return f"{self.name} takes no arguments, got {sorted(params)}" if params else None


@register
class Idle(_NoArguments):
    """Stay put this tick."""

    name = "idle"


@register
class Explore(_NoArguments):
    """The SDK's ``explore``; scripts/simple_agent.gd has no branch for it, so no shipped scene offers it."""

    name = "explore"
