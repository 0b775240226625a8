"""One agent's situation this tick: its observation, the settings, and what follows from them (computed once).

The game looks names up exactly (``Apple2``, ``Workbench``) and checks range: foraging.gd
collects within ``COLLECTION_RADIUS`` and its ``craft_item`` fails unless a station of the
recipe's type is within ``CRAFTING_RADIUS`` and every input is held. These queries are what
the tools' narrowing and the game's checks share, so both read them from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from arena_vllm.agent.schemas import Observation, Resource
from arena_vllm.config import RecipeSpec, Settings, ToolSpec


class Situation:
    """One agent, one tick. ``cap`` (default ``agent.max_entities_in_prompt``) bounds every list offered.

    Example::

        here = Situation(observation, settings)
        here.collectable   # ['Apple2']: names collect can take now, nearest first
    """

    def __init__(self, observation: Observation, settings: Settings, cap: int | None = None) -> None:
        self.observation = observation
        self.settings = settings
        self.cap = settings.agent.max_entities_in_prompt if cap is None else cap
        self._memo: dict[str, Any] = {}

    def spec(self, name: str) -> ToolSpec:
        """The configured tool (configs/tools) of that name."""
        return next(tool for tool in self.settings.tools.tools if tool.name == name)

    def memo(self, key: str, compute: Any) -> Any:
        """``compute()`` once per situation (an entry's schema and resolve read the same targets)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def distance(self, entity: Resource) -> float:
        """The distance the game gave, else the one from positions."""
        return distance_from(self.observation.position, entity)

    def nearest_first(self, entities: Sequence[Resource]) -> list[tuple[float, Resource]]:
        """``(distance, entity)`` pairs, nearest first (stable for equal distances)."""
        return sorted(((self.distance(e), e) for e in entities), key=lambda pair: pair[0])

    def resource_names(self, radius: float | None = None) -> list[str]:
        """Names of the visible resources (within ``radius`` when given), nearest first, each once."""
        return resource_names(self.observation, radius)

    @cached_property
    def collectable(self) -> list[str]:
        """The resources ``collect`` can take now: within the scene's ``collect_radius``, nearest first."""
        return self.resource_names(self.settings.scene.collect_radius)

    @cached_property
    def known_recipes(self) -> dict[str, RecipeSpec]:
        """The recipes the game sent in ``custom.recipes``, else the scene's."""
        sent = self.observation.custom.recipes
        if sent:
            return {name: RecipeSpec(inputs=dict(r.inputs), station=r.station) for name, r in sent.items()}
        return dict(self.settings.scene.recipes)

    def craft_problem(self, recipe: RecipeSpec) -> str | None:
        """Why this recipe cannot be crafted where the agent stands (foraging.gd ``craft_item``'s checks), or None."""
        radius = self.settings.scene.craft_radius
        if radius is None:
            return None
        if recipe.station:
            near = [
                s for s in self.observation.nearby_stations if s.type == recipe.station and self.distance(s) <= radius
            ]
            if not near:
                return f"needs a {recipe.station!r} station within {radius:g}"
        held = self.observation.inventory_counts()
        missing = {item: count for item, count in recipe.inputs.items() if held.get(item, 0) < count}
        return f"needs {missing} more than held {held}" if missing else None

    @cached_property
    def craftable(self) -> list[str]:
        """The first ``cap`` known recipes craftable here, sorted: ``craft_item``'s enum."""
        known = self.known_recipes
        return sorted(name for name, recipe in known.items() if self.craft_problem(recipe) is None)[: self.cap]

    def recipes_in_sight(self) -> dict[str, RecipeSpec]:
        """The first ``cap`` known recipes (sorted) made at a station the agent sees: what the prompt lists, so it
        can plan a craft where it is going; none when the scene has no ``craft_item`` (prompt tokens are per agent)."""
        if "craft_item" not in self.settings.scene.tools:
            return {}
        seen = {station.type for station in self.observation.nearby_stations}
        known = self.known_recipes
        shown = [name for name in sorted(known) if not known[name].station or known[name].station in seen][: self.cap]
        return {name: known[name] for name in shown}


def resource_names(observation: Observation, radius: float | None = None) -> list[str]:
    """Names of the visible resources (within ``radius`` when given), nearest first, each once."""
    ordered = sorted((distance_from(observation.position, r), r.name) for r in observation.nearby_resources)
    return list(dict.fromkeys(name for distance, name in ordered if radius is None or distance <= radius))


def distance_from(origin: Sequence[float], entity: Resource) -> float:
    """``entity.distance`` when the game gave one, else the straight-line distance from ``origin``."""
    return entity.distance if entity.distance is not None else math.dist(origin, entity.position)
