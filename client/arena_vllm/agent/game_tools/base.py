"""The registry and the base class every game tool derives from."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from arena_vllm.agent.game_tools.situation import Situation

_REGISTRY: dict[str, GameTool] = {}


class UnknownGameTool(KeyError):
    """A tool name with no registry entry (configs/tools names a tool nobody implemented)."""


class GameTool:
    """One game tool. Subclasses set ``name`` and override what differs from a plain pass-through tool.

    The defaults suit a tool the game takes as configured: offered as its YAML says, arguments
    passed through unchanged, checked only by its schema.
    """

    name: ClassVar[str]

    def schema(self, here: Situation) -> dict[str, Any] | None:
        """The parameters offered to this agent now; ``None`` leaves the tool out this tick."""
        return copy.deepcopy(here.spec(self.name).parameters)

    def resolve(self, arguments: dict[str, Any], here: Situation) -> dict[str, Any] | None:
        """The game's arguments for the model's; ``None`` when they name nothing this agent sees."""
        return arguments

    def problem(self, params: dict[str, Any], here: Situation) -> str | None:
        """Why the game could not carry out ``params`` (the game's arguments) for this agent, or None."""
        return None

    def describe(self, arguments: dict[str, Any], here: Situation) -> str:
        """The model's call in a few words (the decision's reasoning)."""
        return self.name


def register(cls: type[GameTool]) -> type[GameTool]:
    """Class decorator: one instance of ``cls`` serves every agent (entries hold no state)."""
    if cls.name in _REGISTRY:
        raise ValueError(f"game tool {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def game_tool(name: str) -> GameTool:
    """The registry entry of ``name``; :class:`UnknownGameTool` when there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownGameTool(f"no game tool {name!r} is registered (known: {sorted(_REGISTRY)})") from None


def registered() -> list[str]:
    """The names of every registered game tool, sorted."""
    return sorted(_REGISTRY)
