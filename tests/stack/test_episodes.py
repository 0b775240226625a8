"""A short closed-loop episode through the real stack: every decision executable, play no worse than idle.

The world is tests/support/arena_world.py (Agent Arena's rules, the game's ``/observe`` bodies),
the agents of every layout go in one ``POST /tick`` per tick, and a trained model plays
(SmolLM2-135M-Instruct): it must collect at least what idle does with no more damage. (With the
tests' tiny random-weight model only the resources check would hold: random moves may walk into
a fire; ``player`` is the one line to change.)
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
def player(real_stack: Stack) -> Iterator[Stack]:
    """The stack that plays: SmolLM2-135M-Instruct, a trained model (built offline from its PyPI wheel)."""
    yield real_stack


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
