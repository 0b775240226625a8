"""Observation -> the user prompt: short lines of what helps decide, nearest things first (each list sorted).

Small models decide better on short prompts, and a tick of many agents costs prompt tokens
times agents, so the rendering is compact: positions in whole units (the form ``move_to``
takes), distances to one decimal, at most ``max_entities`` of every list (resources, hazards,
stations, inventory, progress, recipes and their inputs, events; the rest counted, not
listed), only the nearest explore target, long game texts cut. Each line has a priority
(:data:`PRIORITY`): :func:`fit_lines` drops the least useful ones when a prompt is over its
byte budget (``agent.prompt_budget_bytes``, enforced by the policy's ``plan_call``). It carries what the SDK's
``format_observation`` shows (hazards with distance, stations, inventory, explore targets,
the last tool result) plus the recipes and the agent's recent experiences.

Every string that comes from the game (names, texts, errors) is written as a JSON string:
quotes, newlines and control characters are escaped, so a name like
``"Apple\\nIgnore the above"`` stays one quoted value on its line. Labels (types, items,
stations, directions) that are one plain word are written bare (``berry``), anything else quoted. The system prompt is the
scene's and the same for every agent: vLLM caches it as a shared prefix.

Example::

    from arena_vllm.agent.prompt import render_observation
    from arena_vllm.agent.schemas import Observation

    obs = Observation.model_validate({
        "agent_id": "a1", "tick": 7, "position": [0, 0, 0],
        "nearby_resources": [{"name": "Apple2", "type": "berry", "position": [3, 0, 4]}],
    })
    print(render_observation(obs, max_entities=8))
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from arena_vllm.agent.game_tools.situation import distance_from
from arena_vllm.agent.schemas import Experience, Hazard, Observation, Resource
from arena_vllm.config import RecipeSpec

#: A label written without quotes (:func:`_word`): a letter, then up to 31 letters, digits or underscores.
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")

#: Game texts (objective, errors, experience descriptions) are cut to this many characters.
MAX_TEXT_IN_PROMPT = 120

#: Which lines go first when a prompt is over its budget: the highest number first. The header
#: (who, where, health) is never dropped; hazards and resources are what a decision needs most.
PRIORITY = {
    "header": 0,
    "Hazards": 1,
    "Resources": 2,
    "Inventory": 3,
    "Stations": 4,
    "Recipes": 5,
    "Last action": 6,
    "Explore": 7,
    "Objective": 8,
    "Progress": 9,
    "Recent events": 10,
}


def render_observation(
    observation: Observation,
    max_entities: int,
    experiences: Sequence[Experience] = (),
    recipes: Mapping[str, RecipeSpec] | None = None,
    positions: bool = True,
) -> str:
    """The user prompt for one agent; ``max_entities`` caps each list, ``recipes`` are shown when given."""
    return "\n".join(line for _, line in prompt_lines(observation, max_entities, experiences, recipes, positions))


def fit_lines(lines: Sequence[tuple[int, str]], budget_bytes: int, keep: int = 0) -> str | None:
    """The lines, in order, without the lowest-priority ones until the UTF-8 text fits ``budget_bytes``;
    None when the lines of priority ``keep`` or more important do not fit."""
    kept = list(lines)
    size = len("\n".join(line for _, line in kept).encode())
    while size > budget_bytes:
        droppable = [index for index, (priority, _) in enumerate(kept) if priority > keep]
        if not droppable:
            return None
        worst = max(droppable, key=lambda index: (kept[index][0], index))
        size -= len(kept[worst][1].encode()) + 1
        del kept[worst]
    return "\n".join(line for _, line in kept)


def prompt_lines(
    observation: Observation,
    max_entities: int,
    experiences: Sequence[Experience] = (),
    recipes: Mapping[str, RecipeSpec] | None = None,
    positions: bool = True,
) -> list[tuple[int, str]]:
    """The user prompt's lines with their :data:`PRIORITY`, in prompt order; every list capped at ``max_entities``.

    ``positions=False`` leaves coordinates out (``move_to`` takes names then: the model needs none).
    """
    obs = observation
    cap = max_entities
    lines = [
        (
            PRIORITY["header"],
            (
                f"Tick {obs.tick}. You are {_q(obs.agent_id)}"
                + (f" at {_vec(obs.position)}" if positions else "")
                + ", "
                f"health {_num(obs.health)}/{_num(obs.max_health)}"
                + (
                    f", energy {_num(obs.energy)}." if "energy" in obs.model_fields_set else "."
                )  # the game may not send it
            ),
        )
    ]
    if obs.objective is not None:
        limit = f" (time limit {obs.objective.time_limit} ticks)" if obs.objective.time_limit else ""
        lines.append((PRIORITY["Objective"], f"Objective: {_q(_cut(obs.objective.description))}{limit}."))
    if obs.current_progress:
        progress = [f"{_word(k)}={_num(v)}" for k, v in obs.current_progress.items()]
        lines.append((PRIORITY["Progress"], "Progress: " + _capped(progress, cap) + "."))
    lines.append((PRIORITY["Resources"], _entities("Resources", obs.nearby_resources, obs.position, cap, positions)))
    lines.append((PRIORITY["Hazards"], _entities("Hazards", obs.nearby_hazards, obs.position, cap, positions)))
    if obs.nearby_stations:
        lines.append((PRIORITY["Stations"], _entities("Stations", obs.nearby_stations, obs.position, cap, positions)))
    lines.append((PRIORITY["Inventory"], f"Inventory: {_inventory(obs.inventory_counts(), cap)}."))
    if recipes:
        shown = [_recipe(name, r, cap) for name, r in recipes.items()]
        lines.append((PRIORITY["Recipes"], "Recipes: " + _capped(shown, cap, "; ") + "."))
    if obs.exploration is not None:
        lines.append((PRIORITY["Explore"], _exploration(obs, cap, positions)))
    if obs.tool_result is not None:
        result = obs.tool_result
        outcome = "succeeded" if result.success else f"failed: {_q(_cut(result.error))}" if result.error else "failed"
        lines.append((PRIORITY["Last action"], f"Last action: {_word(result.tool)} {outcome}."))
    if experiences:
        recent = [_experience(e) for e in experiences[len(experiences) - min(cap, len(experiences)) :]] if cap else []
        earlier = len(experiences) - len(recent)
        shown = (
            "; ".join(recent)
            + ("; " if recent and earlier else "")
            + (f"{earlier} earlier not listed" if earlier else "")
        )
        lines.append((PRIORITY["Recent events"], f"Recent events: {shown}."))
    return lines


def _capped(items: Sequence[str], cap: int, sep: str = ", ") -> str:
    """The first ``cap`` items, then how many more there are."""
    shown = list(items[:cap])
    if len(items) > cap:
        shown.append(f"{len(items) - cap} more not listed")
    return sep.join(shown)


def _entities(title: str, entities: Sequence[Resource], origin: Sequence[float], cap: int, positions: bool) -> str:
    """One line of the ``cap`` nearest entities, distance computed from positions when not given."""
    if not entities:
        return f"{title}: none in sight."
    by_distance = sorted(((distance_from(origin, e), e) for e in entities), key=lambda pair: pair[0])
    shown = [_entity(entity, distance, positions) for distance, entity in by_distance[:cap]]
    hidden = len(by_distance) - len(shown)
    if hidden:
        shown.append(f"{hidden} more not listed")
    return f"{title}: " + "; ".join(shown) + "."


def _entity(entity: Resource, distance: float, positions: bool) -> str:
    kind = f" {_word(entity.type)}" if entity.type else ""
    damage = f", damage {_num(entity.damage)}" if isinstance(entity, Hazard) and entity.damage else ""
    where = f" {_vec(entity.position)}" if positions else ""
    return f"{_q(entity.name)}{kind}{where} {_num(distance)} away{damage}"


def _inventory(counts: Mapping[str, float], cap: int) -> str:
    held = [f"{_num(count)} {_word(name)}" for name, count in counts.items() if count]
    return _capped(held, cap) or "empty"


def _recipe(name: str, recipe: RecipeSpec, cap: int) -> str:
    inputs = _capped([f"{count} {_word(item)}" for item, count in recipe.inputs.items()], cap, " + ") or "nothing"
    station = f" at {_word(recipe.station)}" if recipe.station else ""
    return f"{_q(name)}: {inputs}{station}"


def _exploration(obs: Observation, cap: int, positions: bool) -> str:
    """How much is explored and the nearest frontier, which ``move_to`` reaches."""
    assert obs.exploration is not None
    line = f"Explored {_num(obs.exploration.exploration_percentage)}%."
    targets = sorted(obs.exploration.explore_targets, key=lambda t: t.distance)
    if targets and cap:
        nearest = targets[0]
        where = f" {_vec(nearest.position)}" if positions else ""
        line += f" Nearest frontier: {_word(nearest.direction)}{where} {_num(nearest.distance)} away."
    return line


def _experience(event: Experience) -> str:
    what = f"tick {event.tick} {_word(event.event_type)}"
    if event.description:
        what += f" {_q(_cut(event.description))}"
    if event.object_name:
        what += f" from {_q(event.object_name)}"
    if event.damage_taken:
        what += f" (-{_num(event.damage_taken)} health)"
    return what


def _q(text: str) -> str:
    """A game string as a JSON string: it cannot close its quotes or start a new line."""
    return json.dumps(text)


def _word(text: str) -> str:
    """A game label (a type, item, station, direction) bare when it is one plain word (``berry``), else quoted:
    one word can neither leave its line nor read as an instruction, and the quotes cost tokens on every entity."""
    return text if _PLAIN_WORD.fullmatch(text) else _q(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_IN_PROMPT else text[: MAX_TEXT_IN_PROMPT - 3] + "..."


def _vec(values: Sequence[float]) -> str:
    """A position in whole units, ``(-2,0,5)``: the form ``move_to`` takes, and fewer tokens."""
    return "(" + ",".join(str(round(v)) for v in values) + ")"


def _num(value: float) -> str:
    """One decimal at most, no trailing ".0" (fewer tokens); ``+ 0.0`` turns -0.0 into 0 so the model never sees "-0"."""
    return f"{round(value, 1) + 0.0:g}"
