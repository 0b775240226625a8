"""Episodes without an engine: the beginner starter's priorities, the scenario rubrics, the scoring."""

from __future__ import annotations

import asyncio

import pytest

from arena_vllm.config import load_settings
from tests.support.arena_world import make_layouts
from tests.support.episodes import (
    SCENARIOS,
    BeginnerPolicy,
    FallbackPolicy,
    IdlePolicy,
    beginner_decision,
    eval_scenarios,
    play,
    summary,
)
from tests.support.game_requests import foraging_observe

pytestmark = pytest.mark.usefixtures("clean_environment")


def body(position=(0.0, 0.0, 0.0), resources=None, hazards=None, stations=None, inventory=None, exploration=None):
    return foraging_observe(
        "a",
        1,
        position,
        inventory=inventory,
        exploration=exploration,
        resources=resources or {},
        hazards=hazards or {},
        stations=stations or {},
    )


def test_beginner_escapes_a_hazard_closer_than_3_to_5_beyond_it() -> None:
    decision = beginner_decision(body(hazards={"Fire": (1.0, 0.0, 0.0)}, resources={"Berry": (0.0, 0.5, 2.0)}))
    assert decision == {"tool": "move_to", "params": {"target_position": [-4.0, 0.0, 0.0]}, "source": "beginner"}


def test_beginner_walks_to_the_closest_resource_before_crafting() -> None:
    seen = body(
        hazards={"Pit": (3.5, 0.0, 0.0)},
        resources={"Berry": (6.0, 0.5, 0.0), "Wood": (0.0, 0.3, -4.0)},
        stations={"Workbench": (1.0, 0.0, 0.0, "workbench")},
        inventory={"wood": 1, "stone": 1},
    )
    assert beginner_decision(seen)["params"] == {"target_position": [0.0, 0.3, -4.0]}


@pytest.mark.parametrize(("inventory", "recipe"), [({"wood": 1, "stone": 1}, "torch"), ({"berry": 2}, "meal")])
def test_beginner_crafts_at_a_workbench_from_custom_inventory(inventory, recipe) -> None:
    seen = body(stations={"Workbench": (2.9, 0.0, 0.0, "workbench")}, inventory=inventory)
    assert beginner_decision(seen)["params"] == {"recipe": recipe}


def test_beginner_explores_the_first_target_else_idles() -> None:
    target = {"direction": "east", "distance": 9.0, "position": [9.0, 0.0, 0.0]}
    explore = {
        "exploration_percentage": 5.0,
        "total_cells": 676,
        "seen_cells": 30,
        "frontiers_by_direction": {"east": 9.0},
        "explore_targets": [target],
    }
    assert beginner_decision(body(exploration=explore))["params"] == {"target_position": [9.0, 0.0, 0.0]}
    assert beginner_decision(body())["tool"] == "idle"


@pytest.mark.parametrize("rules", ["mockarena", "foraging"])
def test_the_baselines_play_better_than_idle(rules) -> None:
    layouts = make_layouts(8)
    settings = load_settings()
    idle, beginner, fallback = (
        asyncio.run(play(policy, rules, layouts, ticks=20))
        for policy in (IdlePolicy(), BeginnerPolicy(), FallbackPolicy(settings))
    )
    assert idle.collected == 0
    assert beginner.collected >= 8 and fallback.collected >= 8
    assert beginner.problems == fallback.problems == idle.problems == 0
    if rules == "mockarena":  # idle stands in the fire's radius; the foraging scene's fires are 0.4 wide
        assert beginner.damage < idle.damage and fallback.damage < idle.damage
    assert fallback.sources == {"fallback": fallback.decisions} and len(fallback.latencies_s) == fallback.decisions


def test_scenario_rubrics_tell_good_from_bad() -> None:
    rubric = {s.name: s.judge for s in SCENARIOS}
    move = lambda x, z: {"tool": "move_to", "params": {"target_position": [x, 0, z]}}  # noqa: E731
    assert rubric["hazard_escape"](move(-3, 0)) and not rubric["hazard_escape"](move(2, 0))
    assert not rubric["hazard_escape"]({"tool": "idle", "params": {}})
    assert not rubric["hazard_escape"](move(97, 41))  # far from the fire, but the way there goes through it
    assert rubric["resource_collection"](move(5, 2)) and not rubric["resource_collection"](move(0, 5))
    assert rubric["danger_vs_reward"](move(-2, 0)) and not rubric["danger_vs_reward"](move(3, 1))
    assert rubric["low_health_triage"](move(5, 3)) and not rubric["low_health_triage"](move(-5, -3))
    assert rubric["exploration"](move(0, -7)) and not rubric["exploration"]({"tool": "idle", "params": {}})
    assert rubric["crafting_opportunity"]({"tool": "craft_item", "params": {"recipe": "torch"}})
    assert not rubric["crafting_opportunity"]({"tool": "craft_item", "params": {"recipe": "meal"}})


def test_scenarios_score_by_majority_of_draws() -> None:
    beginner = {r.scenario: r for r in asyncio.run(eval_scenarios(BeginnerPolicy()))}
    # the starter flees, heads for berries; it idles with nothing in sight, and reads custom.inventory only
    assert [name for name, r in beginner.items() if r.passed] == [
        "hazard_escape",
        "resource_collection",
        "danger_vs_reward",
        "low_health_triage",
    ]
    assert all(len(r.good) == 3 for r in beginner.values())
    assert not any(r.passed for r in asyncio.run(eval_scenarios(IdlePolicy())))


def test_the_summary_has_a_row_per_rule_set_and_policy() -> None:
    layouts = make_layouts(2)
    runs = [
        asyncio.run(play(IdlePolicy(), rules, layouts, ticks=3, run=n))
        for rules in ("mockarena", "foraging")
        for n in (1, 2)
    ]
    table = summary(runs)
    assert len(table) == 4 and table[2].split()[:3] == ["mockarena", "idle", "2"]
    assert runs[0].as_dict()["decisions"] == 6 and "latencies_s" not in runs[0].as_dict()
