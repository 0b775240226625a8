"""Closed-loop episodes and the SDK's eval scenarios, played by the stack and by baselines, scored.

Policies answer a whole tick at once (a list of ``POST /observe`` bodies -> a list of decisions):

- ``stack``: one ``POST /tick`` per tick with every agent of every layout, so vLLM batches them;
- ``beginner``: the SDK's beginner starter (starters/beginner/agent.py ``Agent.decide``), re-implemented;
- ``fallback``: this agent's own heuristic (``arena_vllm.agent.fallback.fallback_decision``, as
  ``agent/policy.py`` calls it when the model fails);
- ``idle``: does nothing.

An episode runs ``ticks`` ticks over N layouts (tests/support/arena_world.py) under one rule set
and scores the run: resources collected, crafts, damage, decisions the world could not carry
out, decisions by ``source``, the latency of each decision (a decision waits for its whole
tick) and, with vLLM's counters, generated tokens per model call. The six eval scenarios of
python/evals/eval_agent.py ``SCENARIOS`` are sent as SDK observations, drawn 3 times each, and
judged by the rubric written beside each.

Example::

    import asyncio
    from tests.support.arena_world import make_layouts
    from tests.support.episodes import BeginnerPolicy, play

    result = asyncio.run(play(BeginnerPolicy(), "mockarena", make_layouts(8), ticks=20))
    print(result.line())
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx

from arena_vllm.agent.fallback import fallback_decision
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import Settings
from tests.support.arena_world import Layout, Rules, make_world

#: vLLM's counters read before and after a run: ``{"generated": ..., "requests": ...}``.
Counters = Callable[[], Awaitable[dict[str, float]]]
#: A decision as the game gets it: ``{tool, params, reasoning, source}``.
Decision = dict[str, Any]
#: Sources that are the model's own call (the README's "Decisions").
MODEL_SOURCES = ("native", "prompt")


class Policy(Protocol):
    """Decides a whole tick: one decision per body, in order."""

    name: str

    async def decide(self, tick: int, bodies: list[dict[str, Any]]) -> list[Decision]: ...


class IdlePolicy:
    """The floor: an agent that never acts."""

    name = "idle"

    async def decide(self, tick: int, bodies: list[dict[str, Any]]) -> list[Decision]:
        return [{"tool": "idle", "params": {}, "source": "idle"} for _ in bodies]


class FallbackPolicy:
    """The agent's heuristic alone: ``fallback_decision(observation, settings, why)``, as agent/policy.py calls it."""

    name = "fallback"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def decide(self, tick: int, bodies: list[dict[str, Any]]) -> list[Decision]:
        return [
            fallback_decision(Observation.model_validate(b), self.settings, "baseline").model_dump() for b in bodies
        ]


class BeginnerPolicy:
    """starters/beginner/agent.py ``Agent.decide``: escape danger, move to the closest resource, craft, explore, idle."""

    name = "beginner"

    async def decide(self, tick: int, bodies: list[dict[str, Any]]) -> list[Decision]:
        return [beginner_decision(b) for b in bodies]


def beginner_decision(body: dict[str, Any]) -> Decision:
    """``Agent.decide``'s priorities on the body the game sends (the SDK's ``Observation.from_dict`` fields)."""

    def decided(tool: str, params: dict[str, Any]) -> Decision:
        return {"tool": tool, "params": params, "source": "beginner"}

    position = body["position"]
    for hazard in body.get("nearby_hazards", []):  # check_danger: the first hazard closer than 3.0
        if hazard.get("distance", 0.0) < 3.0:
            return decided("move_to", {"target_position": _escape(position, hazard["position"], 5.0)})
    resources = body.get("nearby_resources", [])
    if resources:  # collect_resources: always move toward the closest ("Godot auto-collects")
        closest = min(resources, key=lambda r: r.get("distance", 0.0))
        return decided("move_to", {"target_position": list(closest["position"])})
    inventory = (body.get("custom") or {}).get("inventory") or {}  # try_crafting reads custom.inventory only
    if body.get("nearby_stations") and inventory:
        for station in body["nearby_stations"]:
            if station.get("distance", 0.0) > 3.0:
                continue
            if station["type"] == "workbench":
                if inventory.get("wood", 0) >= 1 and inventory.get("stone", 0) >= 1:
                    return decided("craft_item", {"recipe": "torch"})
                if inventory.get("berry", 0) >= 2:
                    return decided("craft_item", {"recipe": "meal"})
            if station["type"] == "anvil" and inventory.get("wood", 0) >= 3 and inventory.get("stone", 0) >= 2:
                return decided("craft_item", {"recipe": "shelter"})
    targets = (body.get("exploration") or {}).get("explore_targets") or []
    if targets:  # explore: the first explore target as given
        return decided("move_to", {"target_position": list(targets[0]["position"])})
    return decided("idle", {})


def _escape(agent: Sequence[float], danger: Sequence[float], distance: float) -> list[float]:
    """``Agent.calculate_escape_position``: ``distance`` from the danger on the line through the agent."""
    dx, dz = agent[0] - danger[0], agent[2] - danger[2]
    length = math.hypot(dx, dz)
    if length > 0:
        dx, dz = dx / length * distance, dz / length * distance
    else:
        dx, dz = distance, 0.0
    return [danger[0] + dx, agent[1], danger[2] + dz]


class StackPolicy:
    """The running agent service: one ``POST /tick`` (the SDK's shape) with every agent of the tick."""

    name = "stack"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def decide(self, tick: int, bodies: list[dict[str, Any]]) -> list[Decision]:
        agents = [{"agent_id": b["agent_id"], "observations": b} for b in bodies]
        response = await self.http.post("/tick", json={"tick": tick, "agents": agents})
        response.raise_for_status()
        return [action["action"] for action in response.json()["actions"]]


@dataclass
class RunResult:
    """One policy's run over every layout: totals, per-decision figures, and the engine's counters."""

    policy: str
    rules: str
    run: int
    layouts: int
    ticks: int
    resources_total: int
    collected: int = 0
    crafted: int = 0
    damage: float = 0.0
    decisions: int = 0
    problems: int = 0
    problem_examples: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    generated_tokens: float | None = None
    model_calls: float | None = None

    @property
    def model_share(self) -> float:
        """Share of decisions that were the model's own call (``native`` or ``prompt``)."""
        return sum(self.sources.get(s, 0) for s in MODEL_SOURCES) / self.decisions if self.decisions else 0.0

    @property
    def tokens_per_call(self) -> float | None:
        """vLLM's generated tokens per request it finished over the run."""
        if not self.model_calls or self.generated_tokens is None:
            return None
        return self.generated_tokens / self.model_calls

    def latency(self, quantile: float) -> float:
        return _quantile(self.latencies_s, quantile)

    def line(self) -> str:
        tokens = (
            f", {self.tokens_per_call:.1f} generated tokens/call ({self.model_calls:.0f} calls)"
            if self.tokens_per_call is not None
            else ""
        )
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items()))
        return (
            f"{self.rules:<9} {self.policy:<8} run {self.run}: resources {self.collected}/{self.resources_total}, "
            f"crafts {self.crafted}, damage {self.damage:.0f}, not executable {self.problems}/{self.decisions}, "
            f"sources [{sources}], latency median {self.latency(0.5):.3f} s p95 {self.latency(0.95):.3f} s{tokens}"
        )

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("latencies_s")
        row.update(
            latency_median_s=self.latency(0.5),
            latency_p95_s=self.latency(0.95),
            model_share=self.model_share,
            tokens_per_call=self.tokens_per_call,
        )
        return row


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (the median of an even count is the mean of the middle two)."""
    if not values:
        return float("nan")
    if q == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def play(
    policy: Policy,
    rules: Rules,
    layouts: Sequence[Layout],
    ticks: int,
    run: int = 1,
    counters: Counters | None = None,
    on_tick: Callable[[int, float], None] | None = None,
) -> RunResult:
    """``ticks`` ticks of every layout, one agent each, all agents decided together each tick;
    ``on_tick(tick, seconds)`` after each (progress, for runs of minutes on a CPU)."""
    worlds = [make_world(rules, layout, f"agent_{n:02d}") for n, layout in enumerate(layouts)]
    result = RunResult(policy.name, rules, run, len(layouts), ticks, sum(len(layout.resources) for layout in layouts))
    sources: Counter[str] = Counter()
    before = await counters() if counters else None
    for tick in range(ticks):
        playing = [w for w in worlds if w.playing]
        if not playing:
            break
        bodies = [w.observe() for w in playing]
        started = time.perf_counter()
        decisions = await policy.decide(bodies[0]["tick"], bodies)
        waited = time.perf_counter() - started
        if on_tick:
            on_tick(tick, waited)
        for world, decision in zip(playing, decisions, strict=True):
            problem = world.act(decision)
            sources[str(decision.get("source", "?"))] += 1
            result.latencies_s.append(waited)
            if problem and len(result.problem_examples) < 5:
                result.problem_examples.append(f"{world.agent_id} tick {tick}: {problem}")
    if counters and before is not None:
        after = await counters()
        result.generated_tokens = after["generated"] - before["generated"]
        result.model_calls = after["requests"] - before["requests"]
    result.collected = sum(w.score.collected for w in worlds)
    result.crafted = sum(w.score.crafted for w in worlds)
    result.damage = sum(w.score.damage for w in worlds)
    result.problems = sum(len(w.score.problems) for w in worlds)
    result.decisions = sum(sources.values())
    result.sources = dict(sources)
    return result


# --- The SDK's six eval scenarios (python/evals/eval_agent.py SCENARIOS) ---


def sdk_body(
    name: str,
    tick: int,
    *,
    health: float = 100.0,
    hazards: Sequence[dict[str, Any]] = (),
    resources: Sequence[dict[str, Any]] = (),
    stations: Sequence[dict[str, Any]] = (),
    inventory: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``mock_observation(...)`` (python/sdk/agent_arena_sdk/testing.py) at the origin, as the SDK's
    ``Observation.to_dict`` writes it: dict inventories become items ``{id: "<name>_0", name, quantity}``
    (``_coerce_inventory``), hazards carry ``damage`` 5.0 (``mock_hazard``), perception_radius 50."""
    return {
        "agent_id": f"eval_{name}",
        "tick": tick,
        "position": [0.0, 0.0, 0.0],
        "rotation": None,
        "velocity": None,
        "visible_entities": [],
        "nearby_resources": list(resources),
        "nearby_hazards": [{**h, "damage": 5.0} for h in hazards],
        "nearby_stations": list(stations),
        "inventory": [{"id": f"{k}_0", "name": k, "quantity": v} for k, v in (inventory or {}).items()],
        "health": health,
        "energy": 100.0,
        "perception_radius": 50.0,
        "exploration": None,
        "scenario_name": "",
        "objective": None,
        "current_progress": {},
        "custom": {},
        "tool_result": None,
    }


def _target_xz(decision: Decision) -> tuple[float, float] | None:
    target = (decision.get("params") or {}).get("target_position")
    if decision.get("tool") != "move_to" or not isinstance(target, (list, tuple)) or len(target) < 3:
        return None
    return float(target[0]), float(target[2])


def moves_clear_of(hazard: Sequence[float], clear: float = 3.0) -> Callable[[Decision], bool]:
    """Good: a ``move_to`` (from the origin) whose target is at least ``clear`` (MockArena's hazard radius)
    from the hazard and whose first step (1 unit, MockArena's speed) already leaves the hazard farther
    behind: a far target on the other side of the fire is a walk through it."""

    def judge(decision: Decision) -> bool:
        target = _target_xz(decision)
        if target is None or math.hypot(*target) < 1e-9:
            return False
        reach = math.hypot(*target)
        step = (target[0] / reach * min(1.0, reach), target[1] / reach * min(1.0, reach))
        fire = (hazard[0], hazard[2])
        return math.dist(target, fire) >= clear and math.dist(step, fire) > math.hypot(*fire)

    return judge


def heads_for(thing: Sequence[float], within_deg: float = 45.0) -> Callable[[Decision], bool]:
    """Good: a ``move_to`` (from the origin) whose direction is within 45 degrees of the thing's."""

    def judge(decision: Decision) -> bool:
        target = _target_xz(decision)
        if target is None or math.hypot(*target) < 0.5:
            return False
        cos = (target[0] * thing[0] + target[1] * thing[2]) / (math.hypot(*target) * math.hypot(thing[0], thing[2]))
        return cos >= math.cos(math.radians(within_deg))

    return judge


def moves_at_least(units: float = 1.0) -> Callable[[Decision], bool]:
    """Good: a ``move_to`` at least ``units`` from the agent (at the origin): it goes somewhere."""

    def judge(decision: Decision) -> bool:
        target = _target_xz(decision)
        return target is not None and math.hypot(*target) >= units

    return judge


def crafts(recipe: str) -> Callable[[Decision], bool]:
    """Good: ``craft_item`` of ``recipe``."""
    return lambda d: d.get("tool") == "craft_item" and (d.get("params") or {}).get("recipe") == recipe


@dataclass(frozen=True)
class Scenario:
    """One eval scenario: the SDK's description, its observation, and what counts as a good answer."""

    name: str
    description: str
    body: dict[str, Any]
    rubric: str
    judge: Callable[[Decision], bool]


#: The names eval_agent.py's factories give, in its order (mock_hazard -> fire_001, fire_002, ...).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "hazard_escape",
        "Fire is 1.5 units away. Agent should flee.",
        sdk_body(
            "hazard_escape",
            1,
            health=80.0,
            hazards=[{"name": "fire_001", "type": "fire", "position": [1.0, 0.0, 0.0], "distance": 1.5}],
        ),
        "move_to a point at least 3.0 from the fire at [1, 0, 0] (out of MockArena's damage radius)",
        moves_clear_of((1.0, 0.0, 0.0)),
    ),
    Scenario(
        "resource_collection",
        "Berry 8 units away, no threats.",
        sdk_body(
            "resource_collection",
            1,
            resources=[{"name": "berry_001", "type": "berry", "position": [10.0, 0.0, 5.0], "distance": 8.0}],
        ),
        "move_to heading for the berry at [10, 0, 5] (within 45 degrees of its direction)",
        heads_for((10.0, 0.0, 5.0)),
    ),
    Scenario(
        "danger_vs_reward",
        "Fire 2 units away AND berry 3 units away. Safety vs reward tradeoff.",
        sdk_body(
            "danger_vs_reward",
            1,
            health=60.0,
            hazards=[{"name": "fire_002", "type": "fire", "position": [2.0, 0.0, 0.0], "distance": 2.0}],
            resources=[{"name": "berry_002", "type": "berry", "position": [3.0, 0.0, 1.0], "distance": 3.0}],
        ),
        "safety first, as every SDK starter: move_to at least 3.0 from the fire at [2, 0, 0] "
        "(the berry lies 1.4 from the fire, inside its damage radius)",
        moves_clear_of((2.0, 0.0, 0.0)),
    ),
    Scenario(
        "low_health_triage",
        "Health critical (15 HP), berry nearby. Should be cautious.",
        sdk_body(
            "low_health_triage",
            1,
            health=15.0,
            resources=[{"name": "berry_003", "type": "berry", "position": [5.0, 0.0, 3.0], "distance": 4.0}],
        ),
        "no hazard in sight, so the berry (food) is safe to take: move_to heading for it at [5, 0, 3]",
        heads_for((5.0, 0.0, 3.0)),
    ),
    Scenario(
        "exploration",
        "Nothing visible, only 20% explored. Should explore.",
        sdk_body("exploration", 10),
        "move_to somewhere at least 1 unit away (idle explores nothing)",
        moves_at_least(1.0),
    ),
    Scenario(
        "crafting_opportunity",
        "Has wood + stone, workbench nearby. Should craft a torch.",
        sdk_body(
            "crafting_opportunity",
            5,
            inventory={"wood": 2, "stone": 1},
            stations=[{"name": "workbench_001", "type": "workbench", "position": [1.0, 0.0, 0.0], "distance": 1.0}],
        ),
        'craft_item {"recipe": "torch"} (workbench 1.0 away, wood and stone held)',
        crafts("torch"),
    ),
)


@dataclass
class ScenarioResult:
    """One scenario's draws: the decisions, which were good, and the majority verdict."""

    scenario: str
    rubric: str
    decisions: list[Decision]
    good: list[bool]

    @property
    def passed(self) -> bool:
        return sum(self.good) * 2 > len(self.good)

    def line(self) -> str:
        calls = "; ".join(
            f"{'+' if ok else '-'} {d.get('tool')} {d.get('params')}" for d, ok in zip(self.decisions, self.good)
        )
        return f"  {'GOOD' if self.passed else 'bad '} {self.scenario:<21} {sum(self.good)}/{len(self.good)}  {calls}"


async def eval_scenarios(policy: Policy, draws: int = 3) -> list[ScenarioResult]:
    """Every scenario ``draws`` times, all in one tick (distinct agent ids), each answer judged by its rubric."""
    bodies = [{**s.body, "agent_id": f"{s.body['agent_id']}_{n}"} for s in SCENARIOS for n in range(draws)]
    decisions = await policy.decide(1, bodies)
    results = []
    for index, scenario in enumerate(SCENARIOS):
        drawn = decisions[index * draws : (index + 1) * draws]
        results.append(ScenarioResult(scenario.name, scenario.rubric, drawn, [scenario.judge(d) for d in drawn]))
    return results


def summary(results: Sequence[RunResult]) -> list[str]:
    """A table a human reads: per rule set and policy, the median over runs of each figure."""
    header = (
        f"{'rules':<9} {'policy':<8} {'runs':>4} {'resources':>11} {'crafts':>6} {'damage':>7} "
        f"{'not exec.':>9} {'model':>6} {'lat. med':>9} {'lat. p95':>9} {'tok/call':>8}"
    )
    lines = [header, "-" * len(header)]
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.rules, r.policy), []).append(r)
    for (rules, policy), runs in groups.items():

        def med(values: list[float]) -> float:
            return statistics.median(values)

        tokens = [r.tokens_per_call for r in runs if r.tokens_per_call is not None]
        lines.append(
            f"{rules:<9} {policy:<8} {len(runs):>4} {med([r.collected for r in runs]):>6.0f}/{runs[0].resources_total:<4} "
            f"{med([r.crafted for r in runs]):>6.0f} {med([r.damage for r in runs]):>7.0f} "
            f"{med([r.problems for r in runs]):>9.0f} {med([r.model_share for r in runs]):>6.0%} "
            f"{med([r.latency(0.5) for r in runs]):>8.3f}s {med([r.latency(0.95) for r in runs]):>8.3f}s "
            + (f"{med(tokens):>8.1f}" if tokens else f"{'-':>8}")
        )
    return lines
