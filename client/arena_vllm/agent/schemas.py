"""The wire format of Agent Arena's agent protocol: observations in, decisions out.

Field names follow Agent Arena's SDK (``agent_arena_sdk.schemas``) so the game needs no change.
Every number must be finite and every string and list is bounded, so a bad payload is a 422
that names the field instead of a prompt the model cannot use. Unknown keys are ignored at the
top level and kept inside entities: newer game builds add fields, and that must not break a tick.

Example::

    from arena_vllm.agent.schemas import Observation

    obs = Observation.model_validate({"agent_id": "a1", "tick": 3, "position": [0, 0, 0]})
    assert obs.health == 100.0
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, NonNegativeInt, StringConstraints, model_validator

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 2000
MAX_LIST_ITEMS = 512

#: Ids go into log lines and prompts: no control characters (a newline would forge a log line).
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\x00-\x1f\x7f]*$")]
Label = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Distance = Annotated[FiniteFloat, Field(ge=0)]
Vec3 = Annotated[list[FiniteFloat], Field(min_length=3, max_length=3)]


def _bounded(*, max_length: int = MAX_LIST_ITEMS) -> Any:
    """A list field defaulting to empty, capped so one observation cannot flood the service."""
    return Field(default_factory=list, max_length=max_length)


class _Game(BaseModel):
    """Top-level game payloads: tolerant of new keys (ignored), strict about the ones we use."""

    model_config = ConfigDict(extra="ignore")


class _Entity(BaseModel):
    """Entities: extra keys are kept, since scenarios attach their own data."""

    model_config = ConfigDict(extra="allow")


class VisibleEntity(_Entity):
    """Anything the agent can see (other agents, props)."""

    id: Id
    type: Label = ""
    position: Vec3
    distance: Distance | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=64)


class Resource(_Entity):
    """A resource within perception range; ``distance`` is computed from positions when absent."""

    name: Id
    type: Label = ""
    position: Vec3
    distance: Distance | None = None


class Hazard(Resource):
    """A hazard within perception range."""

    damage: FiniteFloat = 0.0


class Station(Resource):
    """A crafting station (workbench, anvil, furnace)."""


class InventoryItem(_Entity):
    """One held item."""

    id: Label = ""
    name: Id
    quantity: NonNegativeInt = 1


class ExploreTarget(_Entity):
    """A frontier the agent could explore."""

    direction: Label
    distance: Distance
    position: Vec3


class Exploration(_Entity):
    """How much of the world the agent has seen."""

    exploration_percentage: Annotated[FiniteFloat, Field(ge=0, le=100)] = 0.0
    total_cells: NonNegativeInt = 0
    seen_cells: NonNegativeInt = 0
    frontiers_by_direction: dict[Label, Distance] = Field(default_factory=dict, max_length=64)
    explore_targets: list[ExploreTarget] = _bounded(max_length=64)


class MetricDefinition(_Entity):
    """One success metric of a scenario objective."""

    target: FiniteFloat
    weight: FiniteFloat = 1.0
    lower_is_better: bool = False
    required: bool = False


class Objective(_Entity):
    """The scenario's goal, passed through so one agent can serve several scenarios."""

    description: Text
    success_metrics: dict[Label, MetricDefinition] = Field(default_factory=dict, max_length=64)
    time_limit: NonNegativeInt = 0


class Observation(_Game):
    """What the game sends for one agent each tick (Agent Arena's ``Observation``)."""

    agent_id: Id
    tick: NonNegativeInt = 0
    position: Vec3
    rotation: Vec3 | None = None
    velocity: Vec3 | None = None
    visible_entities: list[VisibleEntity] = _bounded()
    nearby_resources: list[Resource] = _bounded()
    nearby_hazards: list[Hazard] = _bounded()
    nearby_stations: list[Station] = _bounded()
    # Agent Arena sends a list of items; older scenarios send {name: count}.
    inventory: list[InventoryItem] | dict[Label, FiniteFloat] = _bounded()
    health: FiniteFloat = 100.0
    energy: FiniteFloat = 100.0
    perception_radius: Distance = 50.0
    exploration: Exploration | None = None
    scenario_name: Label = ""
    objective: Objective | None = None
    current_progress: dict[Label, FiniteFloat] = Field(default_factory=dict, max_length=64)
    custom: dict[str, Any] = Field(default_factory=dict, max_length=64)


class Decision(BaseModel):
    """What one agent does this tick: a tool, its arguments, and why (Agent Arena's ``Decision``).

    Example::

        Decision(tool="move_to", params={"target_position": [1.0, 0.0, 2.0]}, reasoning="nearest berry")
    """

    tool: str
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""

    @classmethod
    def idle(cls, reasoning: str) -> Decision:
        """The safe action when no decision could be made; ``reasoning`` says why."""
        return cls(tool="idle", params={}, reasoning=reasoning)


class ObserveResponse(Decision):
    """``POST /observe`` answer: the decision, flat, with the agent it is for."""

    agent_id: str


class TickAgent(_Game):
    """One agent's entry in a ``/tick`` request."""

    agent_id: Id
    observations: Observation


class TickRequest(_Game):
    """``POST /tick`` body: every agent of one simulation tick.

    As in Agent Arena, an observation may omit ``agent_id`` and ``tick``: they are taken from
    its entry and from the request.
    """

    tick: NonNegativeInt
    agents: list[TickAgent]

    @model_validator(mode="before")
    @classmethod
    def _fill_observation_ids(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("agents"), list):
            return data
        agents = []
        for entry in data["agents"]:
            if isinstance(entry, dict) and isinstance(entry.get("observations"), dict):
                given = {"agent_id": entry.get("agent_id"), "tick": data.get("tick")}
                defaults = {key: value for key, value in given.items() if value is not None}
                entry = {**entry, "observations": {**defaults, **entry["observations"]}}
            agents.append(entry)
        return {**data, "agents": agents}


class TickAction(BaseModel):
    """One agent's answer in a ``/tick`` response."""

    agent_id: str
    action: Decision


class TickResponse(BaseModel):
    """``POST /tick`` answer: one action per agent, in the order of the request."""

    tick: int
    actions: list[TickAction]
