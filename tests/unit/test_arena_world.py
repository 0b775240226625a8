"""The episode world's rules, each against the Agent Arena source it is written from (no engine needed)."""

from __future__ import annotations

import math

import pytest

from tests.support.arena_world import (
    ForagingWorld,
    Layout,
    MockArenaWorld,
    Thing,
    VisibilityTracker,
    make_layouts,
    make_world,
)
from tests.support.game_requests import foraging_observe


def layout(resources=(), hazards=(), stations=()) -> Layout:
    return Layout(
        seed=0, start=(0.0, 0.0, 0.0), resources=tuple(resources), hazards=tuple(hazards), stations=tuple(stations)
    )


def move(x: float, z: float, y: float = 0.0) -> dict:
    return {"tool": "move_to", "params": {"target_position": [x, y, z]}}


IDLE = {"tool": "idle", "params": {}}


# --- MockArena (python/sdk/agent_arena_sdk/testing.py) ---


def test_mockarena_moves_one_unit_a_tick_and_lands_on_a_near_target() -> None:
    world = MockArenaWorld(layout(), "a")
    world.observe()
    assert world.act(move(10, 0)) is None
    assert world.position == pytest.approx((1.0, 0.0, 0.0))
    world.position = (9.4, 0.0, 0.0)
    world.act(move(10, 0))
    assert world.position == (10.0, 0.0, 0.0)


def test_mockarena_picks_up_within_1_5_after_the_move() -> None:
    berry = Thing("Berry", "berry", (2.5, 0.0, 0.0))
    far = Thing("Wood", "wood", (0.0, 0.0, 2.6))
    world = MockArenaWorld(layout([berry, far]), "a")
    world.observe()
    world.act(move(5, 0))  # now at x=1: the berry is 1.5 away, the wood 2.79
    assert world.score.collected == 1
    assert [r["name"] for r in world.observe()["nearby_resources"]] == ["Wood"]


def test_mockarena_hurts_5_per_hazard_within_3_and_stops_at_health_0() -> None:
    fires = [Thing("Fire", "fire", (3.0, 0.0, 0.0)), Thing("Fire2", "fire", (0.0, 0.0, -3.01))]
    world = MockArenaWorld(layout(hazards=fires), "a")
    for _ in range(19):
        world.observe()
        world.act(IDLE)
    assert world.score.damage == 95.0  # only the fire at 3.0, not the one at 3.01
    assert world.playing
    world.act(IDLE)
    assert world.health == 0.0 and not world.playing


@pytest.mark.parametrize(
    ("decision", "problem"),
    [
        ({"tool": "explore", "params": {}}, "unknown tool"),
        ({"tool": "move_to", "params": {"target_position": [1, 2]}}, "three finite numbers"),
        ({"tool": "collect", "params": {"target_name": "Berry"}}, "no resource of that name within 1.5"),
        ({"tool": "craft_item", "params": {"recipe": "torch"}}, "MockArena has no crafting"),
    ],
)
def test_mockarena_counts_what_it_cannot_carry_out(decision: dict, problem: str) -> None:
    world = MockArenaWorld(layout([Thing("Berry", "berry", (4.0, 0.0, 0.0))]), "a")
    world.observe()
    assert problem in (world.act(decision) or "")
    assert world.position == (0.0, 0.0, 0.0) and len(world.score.problems) == 1


def test_mockarena_bodies_are_the_scene_s_shape_without_stations_or_exploration() -> None:
    world = MockArenaWorld(
        layout(
            [Thing("Stone2", "stone", (30.0, 0.0, 0.0))], stations=[Thing("Workbench", "workbench", (1.0, 0.0, 0.0))]
        ),
        "a",
    )
    body = world.observe()
    assert set(body) == set(foraging_observe("x", 0, (0.0, 0.0, 0.0)))
    assert body["nearby_resources"] == [
        {"name": "Stone2", "type": "stone", "distance": 30.0, "position": [30.0, 0.0, 0.0]}
    ]
    assert body["nearby_stations"] == [] and "exploration" not in body and body["tick"] == 0


# --- the foraging scene (scripts/foraging.gd, simple_agent.gd, hazards/*.gd) ---


def test_foraging_walks_5_a_second_and_keeps_walking_while_idle() -> None:
    world = ForagingWorld(layout(), "a")
    world.observe()
    world.act(move(10, 0))
    assert world.position[0] == pytest.approx(5.0)
    world.observe()
    world.act(IDLE)  # simple_agent.gd: idle leaves _is_moving as it is
    assert 9.5 <= world.position[0] < 10.0
    assert world.observe()["tool_result"]["tool"] == "move_to"


def test_foraging_collects_within_2_at_the_tick_into_the_inventory() -> None:
    near = Thing("Berry", "berry", (1.9, 0.0, 0.0))  # 1.96 away with the scene's berry height 0.5
    far = Thing("Wood", "wood", (0.0, 0.0, 2.0))  # 2.02 with height 0.3
    world = ForagingWorld(layout([near, far]), "a")
    first = world.observe()
    assert {r["name"] for r in first["nearby_resources"]} == {"Berry", "Wood"}
    assert world.score.collected == 1 and world.inventory == {"berry": 1}
    world.act(IDLE)
    second = world.observe()
    assert [r["name"] for r in second["nearby_resources"]] == ["Wood"]
    assert second["custom"]["inventory"] == {"berry": 1}
    assert second["custom"]["recipes"]["meal"] == {"inputs": {"berry": 2}, "station": "workbench"}


@pytest.mark.parametrize(
    ("where", "held", "error"),
    [
        ((2.4, 0.0, 0.0), {"wood": 1, "stone": 1}, None),
        ((2.6, 0.0, 0.0), {"wood": 1, "stone": 1}, "Not near a workbench station"),
        ((1.0, 0.0, 0.0), {"wood": 1}, "Missing stone: need 1, have 0"),
    ],
)
def test_foraging_crafts_at_the_station_within_2_5_with_the_inputs(where, held, error) -> None:
    world = ForagingWorld(layout(stations=[Thing("Workbench", "workbench", where)]), "a")
    world.inventory = dict(held)
    world.observe()
    problem = world.act({"tool": "craft_item", "params": {"recipe": "torch"}})
    if error is None:
        assert problem is None and world.inventory == {"torch": 1} and world.score.crafted == 1
    else:
        assert error in problem and world.inventory == held and world.score.crafted == 0
    assert world.observe()["tool_result"]["success"] is (error is None)


def test_foraging_fire_hurts_10_a_second_only_while_the_body_overlaps_it() -> None:
    beside = ForagingWorld(layout(hazards=[Thing("Fire", "fire", (0.7, 0.0, 0.0))]), "a")
    beside.observe()
    beside.act(IDLE)
    assert beside.score.damage == 0.0  # 0.7 away: 0.5 from the box's edge, more than the capsule's 0.4
    through = ForagingWorld(layout(hazards=[Thing("Fire", "fire", (2.5, 0.0, 0.0))]), "a")
    through.observe()
    through.act(move(5, 0))
    # inside while x is within 2.5 +- 0.6: 1.2 units at 5 a second, 0.24 s at 10 a second
    assert through.score.damage == pytest.approx(2.4, abs=0.2)


def test_foraging_pit_hurts_25_on_falling_in_then_5_a_second() -> None:
    world = ForagingWorld(layout(hazards=[Thing("Pit", "pit", (0.5, 0.0, 0.0))]), "a")
    world.observe()
    world.act(IDLE)
    assert world.score.damage == pytest.approx(25.0 + 5.0, abs=0.1)
    world.observe()
    world.act(IDLE)
    assert world.score.damage == pytest.approx(25.0 + 10.0, abs=0.1)  # no second fall while inside


def test_foraging_shows_only_what_lies_within_10_and_the_exploration_summary() -> None:
    world = ForagingWorld(
        layout([Thing("Stone", "stone", (9.9, 0.0, 0.0)), Thing("Wood", "wood", (10.5, 0.0, 0.0))]), "a"
    )
    body = world.observe()
    assert [r["name"] for r in body["nearby_resources"]] == ["Stone"]
    explored = body["exploration"]
    assert 0 < explored["seen_cells"] < explored["total_cells"] == 676
    targets = explored["explore_targets"]
    assert 0 < len(targets) <= 5 and [t["distance"] for t in targets] == sorted(t["distance"] for t in targets)
    world.act(move(20, 0))
    world.observe()
    world.act(IDLE)
    assert world.observe()["exploration"]["seen_cells"] > explored["seen_cells"]


def test_visibility_tracker_names_directions_as_the_game() -> None:
    tracker = VisibilityTracker()
    tracker.update((0.0, 0.0, 0.0), 10.0)
    summary = tracker.summary((0.0, 0.0, 0.0))
    assert set(summary["frontiers_by_direction"]) == {
        "east",
        "northeast",
        "north",
        "northwest",
        "west",
        "southwest",
        "south",
        "southeast",
    }
    moved = tracker.summary((0.0, 0.0, 12.0))  # standing south of all it saw: every frontier lies north
    assert {t["direction"] for t in moved["explore_targets"]} <= {"north", "northeast", "northwest", "east", "west"}
    assert all(t["position"][2] < 12.0 for t in moved["explore_targets"] if t["direction"] == "north")


# --- layouts ---


def test_layouts_are_seeded_and_as_the_issue_describes() -> None:
    layouts = make_layouts(8)
    assert layouts == make_layouts(8) and layouts != make_layouts(8, seed=1)
    for each in layouts:
        assert len(each.resources) == 3 and 1 <= len(each.hazards) <= 2
        assert all(math.dist(r.position, each.start) >= 3.0 for r in each.resources)
        things = [t.position for t in (*each.resources, *each.hazards, *each.stations)]
        assert all(math.dist(a, b) >= 1.5 for i, a in enumerate(things) for b in things[i + 1 :])
        assert len({t.name for t in each.resources}) == 3
    assert any(len(each.hazards) == 2 for each in layouts)


@pytest.mark.parametrize("rules", ["mockarena", "foraging"])
def test_each_world_is_its_own_copy(rules) -> None:
    shared = make_layouts(1)[0]
    one, two = make_world(rules, shared, "a"), make_world(rules, shared, "b")
    one.observe()
    one.act(move(*shared.resources[0].position[::2]))
    assert two.position == shared.start and len(two.live) == 3
