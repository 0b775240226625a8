"""A short closed-loop episode through the real stack: every decision executable, play no worse than idle.

The world is tests/support/arena_world.py (Agent Arena's rules, the game's ``/observe`` bodies),
the agents of every layout go in one ``POST /tick`` per tick. With the tests' tiny model (random
weights) "no worse than idle" holds for resources only (idle collects nothing; random moves may
walk into a fire), so damage is compared only when a trained model plays: switch ``player`` to
its fixture and the damage check comes with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.support.arena_world import Rules, make_layouts
from tests.support.episodes import IdlePolicy, RunResult, StackPolicy, play
from tests.support.stack import SERVED_MODEL, Stack

LAYOUTS, TICKS = 4, 5


@pytest.fixture(scope="module")
def player(stack: Stack) -> Iterator[Stack]:
    """The stack that plays: the one line to change for the trained model's stack."""
    yield stack


def episode(player: Stack, rules: Rules) -> tuple[RunResult, RunResult]:
    """The stack's run and idle's, on the same layouts."""
    layouts = make_layouts(LAYOUTS)

    async def both() -> tuple[RunResult, RunResult]:
        async with httpx.AsyncClient(base_url=player.agent_url, timeout=600) as http:
            stack = await play(StackPolicy(http), rules, layouts, TICKS)
        return stack, await play(IdlePolicy(), rules, layouts, TICKS)

    stack, idle = asyncio.run(both())
    print(f"\n{stack.line()}\n{idle.line()}")
    return stack, idle


def test_foraging_episode_decisions_are_all_executable_by_the_scene(player: Stack) -> None:
    stack, idle = episode(player, "foraging")
    assert stack.decisions == LAYOUTS * TICKS
    assert stack.problems == 0, stack.problem_examples
    assert stack.model_share >= 0.9, f"decisions by source {stack.sources}"
    assert stack.collected >= idle.collected


def test_mockarena_episode_is_no_worse_than_idle(player: Stack) -> None:
    stack, idle = episode(player, "mockarena")
    assert stack.collected >= idle.collected
    assert stack.model_share >= 0.9, f"decisions by source {stack.sources}"
    if player.served_model != SERVED_MODEL:  # a trained model must also keep out of the fire
        assert stack.damage <= idle.damage, (stack.line(), idle.line())
