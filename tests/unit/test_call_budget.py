"""Each agent's request asks for no more tokens than the longest call its own tools allow (issue 14).

The game's tools are bounded (enums of names and recipes, integer coordinates), so every tool
set offered on the replay has a finite longest call, and the policy's ``max_tokens`` is that
call's length (plus the end token), not the backend's general setting.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from arena_vllm.agent.actions import game_problem, resolve_call
from arena_vllm.agent.fallback import fallback_decision
from arena_vllm.agent.metrics import AgentMetrics
from arena_vllm.agent.policy import DecisionPolicy, plan_call
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import GenerationResult
from arena_vllm.backends.call_bound import CALL_TOKEN_MARGIN, max_call_tokens
from arena_vllm.config import load_settings
from arena_vllm.tool_shapes import validate_tool_call
from tests.support.game_requests import foraging_at_work, foraging_ticks, longest_calls

SETTINGS = load_settings(["backend.max_tokens_from_tools=true"])
COORDINATES = load_settings(["backend.max_tokens_from_tools=true", "scene.move_targets=coordinates"])
REPLAY = [Observation.model_validate(body) for bodies in foraging_ticks(ticks=3, agents=16) for body in bodies]
REPLAY += [Observation.model_validate(body) for body in foraging_at_work()]  # where craft_item and collect are offered


def written(name: str, arguments: dict[str, Any]) -> bytes:
    """The call as a Hermes-style model writes it: the longest form (a forced call is shorter); tokens <= bytes."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>".encode()


def test_every_replay_tool_set_is_bounded_and_caps_max_tokens() -> None:
    for observation in REPLAY:
        plan = plan_call(observation, SETTINGS)
        bound = max_call_tokens(plan.tools)  # raises UnboundedCallError on any unbounded parameter
        assert plan.max_tokens == min(SETTINGS.backend.max_tokens, bound)
        assert plan.max_tokens < SETTINGS.backend.max_tokens, "the tools' bound should be the tighter one"


def test_the_longest_valid_call_of_the_foraging_tools_fits_max_tokens() -> None:
    """Per replay agent: every offered tool's longest call is schema-valid, game-executable, and fits."""
    offered: set[str] = set()
    for observation in REPLAY:
        plan = plan_call(observation, SETTINGS)
        for name, arguments in longest_calls(plan.tools).items():
            offered.add(name)
            assert validate_tool_call(name, arguments, plan.tools) is None
            params = resolve_call(name, arguments, observation, SETTINGS)
            assert params is not None and game_problem(name, params, observation, SETTINGS) is None
            assert len(written(name, arguments)) + CALL_TOKEN_MARGIN <= plan.max_tokens
    # the replay offers every tool of the scene somewhere but idle (offered only where move_to has no target)
    assert offered == set(SETTINGS.scene.tools) - {"idle"}


def test_move_to_takes_a_name_in_sight_or_bounded_integers() -> None:
    named = plan_call(REPLAY[0], SETTINGS).tools[0]["parameters"]["properties"]["target"]["enum"]
    assert named and validate_tool_call("move_to", {"target": named[0]}, plan_call(REPLAY[0], SETTINGS).tools) is None
    assert validate_tool_call("move_to", {"target": "Atlantis"}, plan_call(REPLAY[0], SETTINGS).tools) is not None
    plan = plan_call(REPLAY[0], COORDINATES)
    assert validate_tool_call("move_to", {"target_position": [1, -2, 3]}, plan.tools) is None
    assert validate_tool_call("move_to", {"target_position": [1.5, 0, 0]}, plan.tools) is not None
    assert validate_tool_call("move_to", {"target_position": [101, 0, 0]}, plan.tools) is not None


@pytest.mark.parametrize(
    "overrides",
    [["backend.function_calling.tool_choice=auto"], ["backend.max_tokens_from_tools=false"]],
    ids=["auto", "off"],
)
def test_max_tokens_stays_configured_unforced_or_when_off(overrides: list[str]) -> None:
    """With tool_choice auto the model may write text before its call; with the setting off there is no cap."""
    settings = load_settings(overrides)
    assert plan_call(REPLAY[0], settings).max_tokens == settings.backend.max_tokens == 256


def test_by_default_a_call_asks_for_its_longest_call_only() -> None:
    """The default (format schema, max_tokens_from_tools on): the engine-constrained call fits its bound."""
    settings = load_settings([])
    assert settings.backend.function_calling.format == "schema"
    assert plan_call(REPLAY[0], settings).max_tokens == max_call_tokens(plan_call(REPLAY[0], settings).tools) < 256


@pytest.mark.parametrize("observation", REPLAY[:16], ids=lambda o: o.agent_id)
def test_fallback_moves_go_where_a_named_target_of_the_model_would(observation: Observation) -> None:
    decision = fallback_decision(observation, SETTINGS, "test")
    if decision.tool == "move_to":
        named = plan_call(observation, SETTINGS).tools[0]["parameters"]["properties"]["target"]["enum"]
        assert decision.params in [resolve_call("move_to", {"target": label}, observation, SETTINGS) for label in named]
    assert game_problem(decision.tool, decision.params, observation, SETTINGS) is None


class Recording:
    """A backend that records the sampling options of each call and answers a fixed valid call."""

    def __init__(self) -> None:
        self.options: list[dict[str, Any]] = []

    async def agenerate_with_tools(self, prompt: str, tools: Any, **options: Any) -> GenerationResult:
        self.options.append(options)
        first_target = tools[0]["parameters"]["properties"]["target"]["enum"][0]  # move_to, by name
        metadata = {
            "tool_call": {"name": "move_to", "arguments": {"target": first_target}},
            "tool_call_source": "native",
        }
        return GenerationResult(text="", tokens_used=1, finish_reason="tool_calls", metadata=metadata)


async def test_the_policy_sends_the_tools_bound_as_max_tokens() -> None:
    backend = Recording()
    policy = DecisionPolicy(backend, SETTINGS, AgentMetrics())
    decisions = await policy.decide_tick(REPLAY[:4])
    assert [d.source for d in decisions] == ["native"] * 4
    assert [o["max_tokens"] for o in backend.options] == [plan_call(o, SETTINGS).max_tokens for o in REPLAY[:4]]
