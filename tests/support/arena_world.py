"""A world to play closed-loop episodes in: seeded layouts, advanced by Agent Arena's own rules.

Two rule sets, each rule written from the file and function named beside it
(github.com/JustInternetAI/AgentArena @ bf2cafb; our own code, nothing copied):

- ``mockarena``: the SDK's ``MockArena`` (python/sdk/agent_arena_sdk/testing.py): a ``move_to``
  goes straight at speed 1 per tick, then every hazard within 3.0 deals its damage (5), then
  every resource within 1.5 is picked up; nothing else acts; the run ends when health is 0.
- ``foraging``: the foraging scene (scripts/foraging.gd, scripts/simple_agent.gd,
  scripts/hazards/*.gd, scripts/visibility_tracker.gd): the agent walks at 5 units a second
  until within 0.5 of its target, and keeps walking while it idles; a resource within
  ``COLLECTION_RADIUS`` (2.0) at a tick is picked up into the inventory; ``craft_item`` needs
  the recipe's station within ``CRAFTING_RADIUS`` (2.5) and its inputs; a fire hurts 10 a
  second while the agent's body overlaps it, a pit 25 on falling in and 5 a second after.

Either way each agent lives in its own copy of a layout, and what it is shown each tick is the
``POST /observe`` body the foraging scene sends (tests/support/game_requests.py
``foraging_observe``): entities within the perception radius with distances, health,
``custom.inventory`` and ``custom.recipes``, the last ``tool_result``, and (foraging rules)
the exploration summary. Left out: obstacles and line of sight (they need Godot's physics),
the pit's trap (pit.gd counts it but nothing stops the agent), collisions between agents.

Example::

    from tests.support.arena_world import make_layouts, make_world

    world = make_world("mockarena", make_layouts(1)[0], "agent_00")
    body = world.observe()
    problem = world.act({"tool": "move_to", "params": {"target_position": body["nearby_resources"][0]["position"]}})
    assert problem is None and world.score.damage >= 0
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.game_requests import RECIPES, foraging_observe, resource_type, tool_result

Vec3 = tuple[float, float, float]
Rules = Literal["mockarena", "foraging"]
RULES: tuple[Rules, ...] = ("mockarena", "foraging")

#: python/sdk/agent_arena_sdk/testing.py ``assert_valid_decision``'s ``valid_tools``: the SDK's four.
SDK_TOOLS = ("move_to", "collect", "idle", "craft_item")
#: scripts/foraging.gd ``RECIPES`` (held once, in tests/support/game_requests.py).
FORAGING_RECIPES = RECIPES


@dataclass(frozen=True)
class Thing:
    """A resource, hazard or station of a layout: its scene-style name (type read from it), kind and place."""

    name: str
    kind: str
    position: Vec3


@dataclass(frozen=True)
class Layout:
    """One seeded arena: where the agent starts and what lies around it."""

    seed: int
    start: Vec3
    resources: tuple[Thing, ...]
    hazards: tuple[Thing, ...]
    stations: tuple[Thing, ...]


#: Height of each resource above the ground: scenes/foraging.tscn (Apple y 0.5, Stone and Wood y 0.3).
FORAGING_HEIGHT = {"berry": 0.5, "wood": 0.3, "stone": 0.3}
#: Node names the foraging scene's types are read from (scripts/foraging.gd ``_get_resource_type``,
#: ``_get_hazard_type``: "Berry"/"Apple" -> berry, "Wood", "Stone", "Fire", "Pit"); Godot numbers repeats.
NODE_NAME = {"berry": "Berry", "wood": "Wood", "stone": "Stone", "fire": "Fire", "pit": "Pit", "workbench": "Workbench"}


def make_layouts(count: int, seed: int = 0, resources: int = 3) -> list[Layout]:
    """``count`` seeded layouts as issue 19 describes them: 3 resources, 1-2 hazards, and one workbench.

    The agent starts at the origin (scenes/foraging.tscn's Agent1). Resources lie 3-12 away (none
    within any pickup radius at the start), the first hazard (a fire) 1.5-4 away (an agent that
    stands still is within MockArena's damage radius in most layouts), a second one (a pit, in
    half the layouts) on the straight walk to one of the resources, the workbench 3-10 away;
    nothing lies within 1.5 of anything else.
    """
    layouts = []
    for index in range(count):
        rng = random.Random(f"arena-layout-{seed}-{index}")
        placed: list[Vec3] = [(0.0, 0.0, 0.0)]

        def place(near: float, far: float) -> Vec3:
            while True:
                angle, reach = rng.uniform(0, 2 * math.pi), rng.uniform(near, far)
                point = (round(reach * math.cos(angle), 2), 0.0, round(reach * math.sin(angle), 2))
                if all(math.dist(point, other) >= 1.5 for other in placed):
                    placed.append(point)
                    return point

        def on_the_way(goal: Vec3) -> Vec3:
            """A point on the straight walk from the start to ``goal``, else anywhere 3-10 away."""
            for _ in range(20):
                share = rng.uniform(0.35, 0.75)
                point = (round(goal[0] * share, 2), 0.0, round(goal[2] * share, 2))
                if all(math.dist(point, other) >= 1.5 for other in placed):
                    placed.append(point)
                    return point
            return place(3.0, 10.0)

        kinds = [rng.choice(("berry", "wood", "stone")) for _ in range(resources)]
        picked = [(kind, place(3.0, 12.0)) for kind in kinds]
        hazards = [("fire", place(1.5, 4.0))]
        if rng.random() < 0.5:
            hazards.append(("pit", on_the_way(rng.choice(picked)[1])))
        station = place(3.0, 10.0)
        layouts.append(
            Layout(
                seed=index,
                start=(0.0, 0.0, 0.0),
                resources=_named(picked),
                hazards=_named(hazards),
                stations=(Thing("Workbench", "workbench", station),),
            )
        )
    return layouts


def _named(things: list[tuple[str, Vec3]]) -> tuple[Thing, ...]:
    """Godot's sibling names: ``Berry``, ``Berry2``, ... (as scenes/foraging.tscn's ``Apple2``, ``Stone2``)."""
    seen: dict[str, int] = {}
    named = []
    for kind, position in things:
        seen[kind] = seen.get(kind, 0) + 1
        suffix = "" if seen[kind] == 1 else str(seen[kind])
        named.append(Thing(NODE_NAME[kind] + suffix, kind, position))
    return tuple(named)


@dataclass
class Score:
    """One agent's episode: what it gained and lost, and every decision the world could not carry out."""

    collected: int = 0
    crafted: int = 0
    damage: float = 0.0
    ticks: int = 0
    problems: list[str] = field(default_factory=list)


class World:
    """One agent in its own copy of a layout; ``observe`` then ``act`` once per tick."""

    rules: Rules
    perception_radius: float

    def __init__(self, layout: Layout, agent_id: str) -> None:
        self.layout = layout
        self.agent_id = agent_id
        self.position: Vec3 = layout.start
        self.health = 100.0
        self.tick = 0
        self.live = {thing.name: thing for thing in layout.resources}
        self.inventory: dict[str, int] = {}
        self.pending: dict[str, Any] | None = None
        self.score = Score()
        self.last_seen: dict[str, Any] = {}

    @property
    def alive(self) -> bool:
        return self.health > 0

    @property
    def playing(self) -> bool:
        """Whether the episode goes on for this agent (MockArena.run stops at health 0; the scene never stops)."""
        return True

    def body(self, exploration: dict[str, Any] | None = None, stations: bool = True) -> dict[str, Any]:
        """The foraging scene's ``POST /observe`` body for this agent now (tests/support/game_requests.py)."""
        body = foraging_observe(
            self.agent_id,
            self.tick,
            self.position,
            health=self.health,
            inventory=self.inventory,
            tool_result=self.pending,
            exploration=exploration,
            resources={t.name: self._resource_place(t) for t in self.live.values()},
            hazards={t.name: t.position for t in self.layout.hazards},
            stations={t.name: (*t.position, t.kind) for t in self.layout.stations} if stations else {},
            perception_radius=self.perception_radius,
        )
        self.pending = None
        self.last_seen = body
        return body

    def _resource_place(self, thing: Thing) -> Vec3:
        return thing.position

    def observe(self) -> dict[str, Any]:
        raise NotImplementedError

    def act(self, decision: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def check(self, decision: dict[str, Any], collect_radius: float) -> str | None:
        """Why the game could not carry this decision out, or None. Shared by both rule sets: a tool of
        the SDK's four; ``move_to`` with three numbers (simple_agent.gd ``call_tool``: an Array of size >= 3;
        testing.py ``MockArena.step``: ``len(target) >= 3``); ``collect`` of a resource this agent was shown
        within reach, by its exact name (the check our agent's ``game_problem`` makes)."""
        tool, params = decision.get("tool"), decision.get("params") or {}
        if tool not in SDK_TOOLS:
            return f"unknown tool {tool!r}"
        if tool == "move_to" and _target(params) is None:
            return f"move_to without three finite numbers: {params.get('target_position')!r}"
        if tool == "collect":
            name = params.get("target_name")
            near = {r["name"] for r in self.last_seen.get("nearby_resources", []) if r["distance"] <= collect_radius}
            if name not in near:
                return f"collect {name!r}: no resource of that name within {collect_radius}"
        return None


def _target(params: dict[str, Any]) -> Vec3 | None:
    target = params.get("target_position")
    if not isinstance(target, (list, tuple)) or len(target) < 3:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in target[:3]):
        return None
    return (float(target[0]), float(target[1]), float(target[2]))


class MockArenaWorld(World):
    """python/sdk/agent_arena_sdk/testing.py ``MockArena`` (its defaults: speed 1, pickup 1.5, hazard 3.0)."""

    rules: Rules = "mockarena"
    #: ``MockArena._build_observation`` lists every resource and hazard: a radius that covers a layout.
    perception_radius = 50.0
    SPEED = 1.0  # MockArena.__init__ speed
    PICKUP_RADIUS = 1.5  # MockArena.__init__ pickup_radius
    HAZARD_RADIUS = 3.0  # MockArena.__init__ hazard_radius
    HAZARD_DAMAGE = 5.0  # MockArena.add_hazard damage (and mock_hazard's)

    @property
    def playing(self) -> bool:
        return self.alive  # MockArena.run: ``if self._health <= 0: break``

    def observe(self) -> dict[str, Any]:
        """``MockArena._build_observation``: no stations, no exploration, no tool results; in the scene's body shape."""
        return self.body(stations=False)

    def act(self, decision: dict[str, Any]) -> str | None:
        """``MockArena.step``: tick + 1, move, hazard damage, pickup, clamp health."""
        problem = self.check(decision, self.PICKUP_RADIUS)
        if problem is None and decision.get("tool") == "craft_item":
            problem = "craft_item: MockArena has no crafting (MockArena.step carries out move_to only)"
        self.tick += 1
        self.score.ticks += 1
        target = _target(decision.get("params") or {}) if decision.get("tool") == "move_to" else None
        if problem is None and target is not None:
            self.position = _step_toward(self.position, target, self.SPEED)  # MockArena._move_toward
        for hazard in self.layout.hazards:  # step's "2. Hazard damage"
            if math.dist(self.position, hazard.position) <= self.HAZARD_RADIUS:
                self.health -= self.HAZARD_DAMAGE
                self.score.damage += self.HAZARD_DAMAGE
        for name, thing in list(self.live.items()):  # step's "3. Auto-collection"
            if math.dist(self.position, thing.position) <= self.PICKUP_RADIUS:
                del self.live[name]
                self.score.collected += 1
        self.health = max(0.0, self.health)  # step's "4. Clamp health"; MockArena.run stops at 0
        if problem:
            self.score.problems.append(problem)
        return problem


def _step_toward(position: Vec3, target: Vec3, step: float) -> Vec3:
    """testing.py ``MockArena._move_toward``: straight at ``step``, landing on the target when within reach."""
    gap = math.dist(position, target)
    if gap <= step:
        return target
    ratio = step / gap
    return tuple(p + (t - p) * ratio for p, t in zip(position, target))  # type: ignore[return-value]


class ForagingWorld(World):
    """The foraging scene's own rules (scripts/foraging.gd and what it builds on)."""

    rules: Rules = "foraging"
    perception_radius = 10.0  # base_scene_controller.gd ``@export var perception_radius: float = 10.0``
    COLLECTION_RADIUS = 2.0  # foraging.gd
    CRAFTING_RADIUS = 2.5  # foraging.gd
    MOVE_SPEED = 5.0  # simple_agent.gd ``move_speed`` (units a second) x ``_movement_speed`` (params.speed, 1.0)
    ARRIVED = 0.5  # simple_agent.gd ``_physics_process``: stops when ``distance < 0.5``
    PHYSICS_HZ = 60  # Godot's default physics_ticks_per_second (project.godot does not change it)
    #: Game time between two decisions. The scene has none of its own: SimulationManager.step_simulation
    #: (godot/src/agent_arena.cpp) advances a tick when stepped, and physics runs in real time between
    #: steps. One second: about one model decision's time on a CPU.
    SECONDS_PER_TICK = 1.0
    AGENT_RADIUS = 0.4  # scenes/foraging.tscn CapsuleShape3D_agent radius
    FIRE_HALF_SIZE = 0.2  # scenes/resources/fire.tscn BoxShape3D 0.4 wide
    FIRE_DPS = 10.0  # scripts/resources/fire.gd damage_per_tick (per second: base_hazard.gd x delta)
    PIT_RADIUS = 0.6  # scenes/resources/pit.tscn CylinderShape3D radius
    PIT_FALL = 25.0  # scripts/hazards/pit.gd initial_damage, on body entered
    PIT_DPS = 5.0  # scripts/hazards/pit.gd damage_per_tick

    def __init__(self, layout: Layout, agent_id: str) -> None:
        super().__init__(layout, agent_id)
        self.target: Vec3 | None = None
        self.inside: set[str] = set()
        self.tracker = VisibilityTracker()

    def _resource_place(self, thing: Thing) -> Vec3:
        return (thing.position[0], FORAGING_HEIGHT[thing.kind], thing.position[2])

    def observe(self) -> dict[str, Any]:
        """base_scene_controller.gd ``_on_tick_advanced``: tick + 1, exploration updated, the observation sent;
        then foraging.gd ``_on_scene_tick`` -> ``_check_resource_collection`` at the tick's position."""
        self.tick += 1
        self.tracker.update(self.position, self.perception_radius)
        body = self.body(exploration=self.tracker.summary(self.position))
        for thing in list(self.live.values()):
            if math.dist(self.position, self._resource_place(thing)) <= self.COLLECTION_RADIUS:
                self._collect(thing)
        return body

    def _collect(self, thing: Thing) -> None:
        """foraging.gd ``_collect_resource``: into the inventory by type, a ``collect`` tool result pending."""
        del self.live[thing.name]
        self.score.collected += 1
        kind = resource_type(thing.name)
        self.inventory[kind] = self.inventory.get(kind, 0) + 1
        self.pending = tool_result("collect", True, {"resource_name": thing.name, "resource_type": kind})

    def craft(self, recipe_name: Any) -> str | None:
        """foraging.gd ``craft_item``: the error it returns, or None after consuming the inputs."""
        recipe = FORAGING_RECIPES.get(recipe_name) if isinstance(recipe_name, str) else None
        if recipe is None:
            return f"Unknown recipe: {recipe_name}"
        at_station = any(
            s.kind == recipe["station"] and math.dist(self.position, s.position) <= self.CRAFTING_RADIUS
            for s in self.layout.stations
        )
        if not at_station:
            return f"Not near a {recipe['station']} station (need to be within {self.CRAFTING_RADIUS} units)"
        for item, needed in recipe["inputs"].items():
            if self.inventory.get(item, 0) < needed:
                return f"Missing {item}: need {needed}, have {self.inventory.get(item, 0)}"
        for item, needed in recipe["inputs"].items():
            self.inventory[item] -= needed
            if self.inventory[item] <= 0:
                del self.inventory[item]
        self.inventory[recipe_name] = self.inventory.get(recipe_name, 0) + 1
        self.score.crafted += 1
        return None

    def act(self, decision: dict[str, Any]) -> str | None:
        """base_scene_controller.gd ``_execute_backend_decision`` (foraging.gd's override for ``craft_item``),
        then ``SECONDS_PER_TICK`` of physics: simple_agent.gd ``_physics_process`` and the hazards'."""
        tool, params = decision.get("tool"), decision.get("params") or {}
        problem = self.check(decision, self.COLLECTION_RADIUS)
        if problem is None and tool == "craft_item":
            error = self.craft(params.get("recipe"))
            self.pending = tool_result("craft_item", error is None, {"success": error is None}, error or "")
            problem = f"craft_item: {error}" if error else None
        elif problem is None and tool == "move_to":
            self.target = _target(params)  # simple_agent.gd call_tool: a new target replaces the old
        elif problem is None and tool == "idle":
            self.pending = tool_result("idle", True, {})  # idle stops nothing: a walk in progress goes on
        self.score.ticks += 1
        for _ in range(round(self.SECONDS_PER_TICK * self.PHYSICS_HZ)):
            self._physics(1.0 / self.PHYSICS_HZ)
        if problem:
            self.score.problems.append(problem)
        return problem

    def _physics(self, delta: float) -> None:
        if self.target is not None:
            if math.dist(self.position, self.target) < self.ARRIVED:
                self.pending = tool_result("move_to", True, {"success": True, "final_position": list(self.position)})
                self.target = None
            else:
                moved = _step_toward(self.position, self.target, self.MOVE_SPEED * delta)
                self.position = (
                    moved[0],
                    max(0.0, moved[1]),
                    moved[2],
                )  # the ground (foraging.tscn Ground) holds it up
        for hazard in self.layout.hazards:
            touching = self._overlaps(hazard)
            if touching and hazard.name not in self.inside and hazard.kind == "pit":
                self._hurt(self.PIT_FALL)  # pit.gd _on_body_entered
            if touching:
                self._hurt((self.FIRE_DPS if hazard.kind == "fire" else self.PIT_DPS) * delta)  # base_hazard.gd
                self.inside.add(hazard.name)
            else:
                self.inside.discard(hazard.name)

    def _overlaps(self, hazard: Thing) -> bool:
        """The agent's capsule (radius 0.4) against the hazard's shape, in the ground plane."""
        dx, dz = abs(self.position[0] - hazard.position[0]), abs(self.position[2] - hazard.position[2])
        if hazard.kind == "pit":
            return math.hypot(dx, dz) < self.PIT_RADIUS + self.AGENT_RADIUS
        gap = math.hypot(max(0.0, dx - self.FIRE_HALF_SIZE), max(0.0, dz - self.FIRE_HALF_SIZE))
        return gap < self.AGENT_RADIUS

    def _hurt(self, amount: float) -> None:
        """base_hazard.gd damages only while ``agent.is_alive()``; base_agent.gd ``take_damage`` clamps at 0."""
        if self.alive:
            self.score.damage += amount
            self.health = max(0.0, self.health - amount)


class VisibilityTracker:
    """scripts/visibility_tracker.gd: 2-unit cells within the world bounds, seen when within perception."""

    CELL = 2.0  # base_scene_controller.gd ``_setup_visibility_tracker``: cell_size = 2.0
    BOUNDS = (-25.0, 25.0)  # base_scene_controller.gd world_bounds_min/max

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()
        width = int((self.BOUNDS[1] - self.BOUNDS[0]) / self.CELL) + 1  # ``_calculate_total_cells``
        self.total = width * width

    def _in_bounds(self, cell: tuple[int, int]) -> bool:
        """``is_cell_in_bounds``: the cell's corner within the bounds."""
        low, high = self.BOUNDS
        return all(low <= c * self.CELL <= high for c in cell)

    def _world(self, cell: tuple[int, int]) -> Vec3:
        """``cell_to_world``: the cell's centre on the ground."""
        return ((cell[0] + 0.5) * self.CELL, 0.0, (cell[1] + 0.5) * self.CELL)

    def update(self, position: Vec3, radius: float) -> None:
        """``update_visibility``: every in-bounds cell whose centre is within ``radius``."""
        cx, cz = math.floor(position[0] / self.CELL), math.floor(position[2] / self.CELL)
        reach = math.ceil(radius / self.CELL)
        for dx in range(-reach, reach + 1):
            for dz in range(-reach, reach + 1):
                cell = (cx + dx, cz + dz)
                if self._in_bounds(cell) and math.dist(position, self._world(cell)) <= radius:
                    self.seen.add(cell)

    def summary(self, position: Vec3) -> dict[str, Any]:
        """``get_exploration_summary``: per direction the nearest frontier cell, the top five targets."""
        nearest: dict[str, tuple[float, Vec3]] = {}
        for cell in self.seen:
            x, z = cell
            if not any(
                self._in_bounds(n) and n not in self.seen for n in ((x - 1, z), (x + 1, z), (x, z - 1), (x, z + 1))
            ):
                continue
            point = self._world(cell)
            direction = _direction(position, point)
            distance = math.dist(position, point)
            if direction not in nearest or distance < nearest[direction][0]:
                nearest[direction] = (distance, point)
        targets = sorted(
            ({"direction": d, "distance": dist, "position": list(p)} for d, (dist, p) in nearest.items()),
            key=lambda t: t["distance"],
        )
        return {
            "exploration_percentage": 100.0 * len(self.seen) / self.total,
            "total_cells": self.total,
            "seen_cells": len(self.seen),
            "frontiers_by_direction": {d: dist for d, (dist, _) in nearest.items()},
            "explore_targets": targets[:5],
        }


def _direction(origin: Vec3, point: Vec3) -> str:
    """visibility_tracker.gd ``get_cardinal_direction``: 0 degrees east, 90 north (Godot's -z)."""
    angle = math.degrees(math.atan2(-(point[2] - origin[2]), point[0] - origin[0])) % 360
    names = ("east", "northeast", "north", "northwest", "west", "southwest", "south", "southeast")
    return names[int(((angle + 22.5) % 360) // 45)]


def make_world(rules: Rules, layout: Layout, agent_id: str) -> World:
    """A fresh world of ``layout`` for one agent under ``rules``."""
    return {"mockarena": MockArenaWorld, "foraging": ForagingWorld}[rules](layout, agent_id)
