"""The wire format of Agent Arena's agent protocol: observations in, decisions out.

Field names follow Agent Arena's SDK (``agent_arena_sdk.schemas``) so the game needs no change.
Every number must be finite and within the service's bounds (``agent.input.*``), every
string printable and on one line, every string and list bounded, so a bad payload is a 422
that names the field instead of a prompt the model cannot use (:mod:`~arena_vllm.agent.bounds`). Unknown keys are ignored at the
top level and kept inside entities: newer game builds add fields, and that must not break a tick.

Example::

    from arena_vllm.agent.schemas import Observation

    obs = Observation.model_validate({"agent_id": "a1", "tick": 3, "position": [0, 0, 0]})
    assert obs.health == 100.0
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeInt,
    StringConstraints,
    model_validator,
)

from arena_vllm.agent.bounds import coordinate, count, distance, number, printable

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 2000
MAX_LIST_ITEMS = 512

#: Strings go into prompts and log lines: printable, one line (:func:`~arena_vllm.agent.bounds.printable`).
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(printable)]
Label = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS), AfterValidator(printable)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(printable)]
#: Numbers are finite and, in the service, within ``agent.input.*`` (:mod:`~arena_vllm.agent.bounds`).
Coordinate = Annotated[FiniteFloat, AfterValidator(coordinate)]
Distance = Annotated[FiniteFloat, Field(ge=0), AfterValidator(distance)]
Number = Annotated[FiniteFloat, AfterValidator(number)]
Count = Annotated[NonNegativeInt, AfterValidator(count)]
Vec3 = Annotated[list[Coordinate], Field(min_length=3, max_length=3)]


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

    damage: Number = 0.0


class Station(Resource):
    """A crafting station (workbench, anvil, furnace)."""


class InventoryItem(_Entity):
    """One held item."""

    id: Label = ""
    name: Id
    quantity: Count = 1


class ExploreTarget(_Entity):
    """A frontier the agent could explore."""

    direction: Label
    distance: Distance
    position: Vec3


class Exploration(_Entity):
    """How much of the world the agent has seen."""

    exploration_percentage: Annotated[FiniteFloat, Field(ge=0, le=100)] = 0.0
    total_cells: Count = 0
    seen_cells: Count = 0
    frontiers_by_direction: dict[Label, Distance] = Field(default_factory=dict, max_length=64)
    explore_targets: list[ExploreTarget] = _bounded(max_length=64)


class MetricDefinition(_Entity):
    """One success metric of a scenario objective."""

    target: Number
    weight: Number = 1.0
    lower_is_better: bool = False
    required: bool = False


class Objective(_Entity):
    """The scenario's goal, passed through so one agent can serve several scenarios."""

    description: Text
    success_metrics: dict[Label, MetricDefinition] = Field(default_factory=dict, max_length=64)
    time_limit: Count = 0


class Recipe(_Entity):
    """A crafting recipe as the foraging scene sends it in ``custom.recipes`` (scripts/foraging.gd)."""

    inputs: dict[Label, Count] = Field(default_factory=dict, max_length=32)
    station: Label = ""


class Custom(_Entity):
    """Scene extras. The foraging scene puts ``inventory`` ({type: count}) and ``recipes`` here
    (scripts/foraging.gd ``_convert_observation_to_backend_format``); other keys are kept."""

    inventory: dict[Label, Number] = Field(default_factory=dict, max_length=MAX_LIST_ITEMS)
    recipes: dict[Id, Recipe] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _few_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) > 64:
            raise ValueError(f"custom has {len(data)} keys; at most 64")
        return data


class ToolResult(_Entity):
    """What became of the agent's last action (base_scene_controller.gd ``pending_tool_results``)."""

    tool: Label
    success: bool = False
    result: dict[str, Any] | None = Field(default=None, max_length=64)
    error: Text = ""
    duration_ticks: Count = 0


class Observation(_Game):
    """What the game sends for one agent each tick (Agent Arena's ``Observation``).

    Accepts the ``/observe`` body of scripts/base_scene_controller.gd (+ scripts/foraging.gd) and
    the perceptions of the C++ ``IPCClient::send_tick_request`` (``custom_data`` read as ``custom``).
    """

    agent_id: Id
    tick: Count = 0
    position: Vec3
    rotation: Vec3 | None = None
    velocity: Vec3 | None = None
    visible_entities: list[VisibleEntity] = _bounded()
    nearby_resources: list[Resource] = _bounded()
    nearby_hazards: list[Hazard] = _bounded()
    nearby_stations: list[Station] = _bounded()
    # Agent Arena sends a list of items; older scenarios send {name: count}.
    inventory: list[InventoryItem] | dict[Label, Number] = _bounded()
    health: Number = 100.0
    max_health: Number = 100.0
    energy: Number = 100.0
    perception_radius: Distance = 50.0
    exploration: Exploration | None = None
    scenario_name: Label = ""
    objective: Objective | None = None
    current_progress: dict[Label, Number] = Field(default_factory=dict, max_length=64)
    custom: Custom = Field(default_factory=Custom)
    tool_result: ToolResult | None = None

    @model_validator(mode="before")
    @classmethod
    def _custom_data_is_custom(cls, data: Any) -> Any:
        """The C++ client's perceptions call it ``custom_data`` (python/archived/ipc/messages.py)."""
        if isinstance(data, dict) and "custom" not in data and isinstance(data.get("custom_data"), dict):
            return {**data, "custom": data["custom_data"]}
        return data

    def inventory_counts(self) -> dict[str, float]:
        """What the agent holds, {name: count}, from ``inventory`` (list or dict) and ``custom.inventory``."""
        if isinstance(self.inventory, dict):
            counts = dict(self.inventory)
        else:
            counts = {}
            for item in self.inventory:
                counts[item.name] = counts.get(item.name, 0) + item.quantity
        return {**counts, **self.custom.inventory}


class Decision(BaseModel):
    """What one agent does this tick: a tool, its arguments, and why (Agent Arena's ``Decision``).

    Example::

        Decision(tool="move_to", params={"target_position": [1.0, 0.0, 2.0]}, reasoning="nearest berry")
    """

    tool: str
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""
    #: How it was made: ``native`` (the model's tool call), ``prompt`` (the model wrote the call as
    #: text), ``fallback`` (the policy's heuristic after a failed or late call), ``idle_after_failure``.
    #: A field, so nobody parses ``reasoning``; the game ignores keys it does not read.
    source: str = "native"

    @classmethod
    def idle(cls, reasoning: str) -> Decision:
        """The safe action when no decision could be made; ``reasoning`` says why."""
        return cls(tool="idle", params={}, reasoning=reasoning, source="idle_after_failure")


class ObserveResponse(Decision):
    """``POST /observe`` answer: the decision, flat, with the agent it is for."""

    agent_id: str


class TickAgent(_Game):
    """One agent's entry in a ``/tick`` request."""

    agent_id: Id
    observations: Observation


class TickRequest(_Game):
    """``POST /tick`` body: every agent of one simulation tick, in either of the game's shapes.

    - ``{tick, agents: [{agent_id, observations}]}`` (the SDK's ``/tick``); an observation may
      omit ``agent_id`` and ``tick``: they are taken from its entry and from the request.
    - ``{tick, perceptions: [observation], simulation_state}`` (godot/src/agent_arena.cpp
      ``IPCClient::send_tick_request``); answered with flat actions.
    """

    tick: Count
    agents: list[TickAgent] | None = None
    perceptions: list[Observation] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_observation_ids(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("perceptions"), list) and data.get("tick") is not None:
            data = {
                **data,
                "perceptions": [{"tick": data["tick"], **p} if isinstance(p, dict) else p for p in data["perceptions"]],
            }
        if not isinstance(data.get("agents"), list):
            return data
        agents = []
        for entry in data["agents"]:
            if isinstance(entry, dict) and isinstance(entry.get("observations"), dict):
                given = {"agent_id": entry.get("agent_id"), "tick": data.get("tick")}
                defaults = {key: value for key, value in given.items() if value is not None}
                entry = {**entry, "observations": {**defaults, **entry["observations"]}}
            agents.append(entry)
        return {**data, "agents": agents}

    @model_validator(mode="after")
    def _one_shape(self) -> TickRequest:
        if (self.agents is None) == (self.perceptions is None):
            raise ValueError("give exactly one of 'agents' (SDK shape) or 'perceptions' (C++ IPCClient shape)")
        return self

    def observations(self) -> list[Observation]:
        """The agents' observations, in request order."""
        if self.perceptions is not None:
            return list(self.perceptions)
        return [agent.observations for agent in self.agents or []]


class TickAction(BaseModel):
    """One agent's answer in a ``/tick`` response."""

    agent_id: str
    action: Decision


class TickResponse(BaseModel):
    """``POST /tick`` answer: one action per agent, in the order of the request."""

    tick: int
    actions: list[TickAction]


class ActionMessage(Decision):
    """One flat action, as the game's scripts/tests/ipc_test.gd ``_on_response_received`` reads it."""

    agent_id: str
    tick: int


class PerceptionsTickResponse(BaseModel):
    """``POST /tick`` answer to the ``perceptions`` shape: flat actions, in request order."""

    tick: int
    actions: list[ActionMessage]


class Experience(_Game):
    """``POST /experience``: something that happened to an agent (scripts/hazards/base_hazard.gd
    ``_report_damage_to_backend``); kept per agent and shown in its next prompts."""

    agent_id: Id
    tick: Count = 0
    event_type: Label = ""
    description: Text = ""
    position: Vec3 | None = None
    object_name: Label = ""
    damage_taken: Number = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=64)


class ToolExecuteRequest(_Game):
    """``POST /tools/execute`` (godot/src/agent_arena.cpp ``IPCClient::_process_next_tool_request``).

    The game executes its tools itself; like the SDK we acknowledge the request.
    """

    tool: Label = ""
    tool_name: Label = ""
    params: dict[str, Any] = Field(default_factory=dict, max_length=64)
    agent_id: Label = ""
    tick: Count = 0


class ToolExecuteResponse(BaseModel):
    """The SDK's answer to ``/tools/execute`` (server/ipc_server.py ``execute_tool``)."""

    success: bool = True
    result: dict[str, Any] | None = None
    error: str = ""
