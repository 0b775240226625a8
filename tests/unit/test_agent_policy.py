"""DecisionPolicy at the backend boundary: answers no real backend gives (a bug, an unknown tool) still become idle."""

from __future__ import annotations

from typing import Any

import pytest

from arena_vllm.agent.metrics import AgentMetrics
from arena_vllm.agent.policy import DecisionPolicy
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import GenerationResult
from arena_vllm.config import load_settings

SETTINGS = load_settings()
COORDINATES = load_settings(["scene.move_targets=coordinates"])  # idle is offered beside move_to there
OBS = Observation.model_validate({"agent_id": "a", "position": [0, 0, 0]})


class Answering:
    """A backend that returns a fixed result, or raises a fixed exception."""

    def __init__(self, answer: GenerationResult | Exception) -> None:
        self.answer = answer

    async def agenerate_with_tools(self, prompt: str, tools: Any, **options: Any) -> GenerationResult:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def called(name: str, arguments: dict, text: str = "") -> GenerationResult:
    metadata = {"tool_call": {"name": name, "arguments": arguments}, "tool_call_source": "native"}
    return GenerationResult(text=text, tokens_used=1, finish_reason="tool_calls", metadata=metadata)


@pytest.mark.parametrize(
    ("answer", "detail", "kind", "generic"),
    [
        (called("teleport", {}), "the model called 'teleport'", "unknown_tool", "model gave no usable call"),
        (
            called("move_to", {"target_position": [float("nan"), 0, 0]}),
            "NaN or Infinity",
            "no_valid_call",
            "model gave no usable call",
        ),
        (
            RuntimeError("boom at http://vllm:8000/v1"),
            "internal error (RuntimeError): boom at http://vllm:8000/v1",
            "internal",
            "internal error",
        ),
    ],
    ids=["unknown-tool", "nan-arguments", "bug"],
)
async def test_unusable_answers_become_the_fallback_with_a_generic_reason_and_the_details_in_the_log(
    answer: Any, detail: str, kind: str, generic: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = AgentMetrics()
    [decision] = await DecisionPolicy(Answering(answer), SETTINGS, metrics).decide_tick([OBS])  # type: ignore[arg-type]
    assert (decision.tool, decision.source) == ("idle", "fallback")
    assert decision.reasoning == f"fallback: idle, nothing in sight to move to ({generic})"
    assert detail in caplog.text and 'agent "a"' in caplog.text
    assert metrics.registry.get_sample_value("arena_agent_backend_errors_total", {"kind": kind}) == 1


async def test_the_models_own_words_are_kept_as_reasoning() -> None:
    backend = Answering(called("idle", {}, text="  Nothing in reach.  "))
    [decision] = await DecisionPolicy(backend, COORDINATES, AgentMetrics()).decide_tick([OBS])  # type: ignore[arg-type]
    assert (decision.tool, decision.reasoning, decision.source) == ("idle", "model: idle; Nothing in reach.", "native")


async def test_one_situation_per_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tools are narrowed and the call resolved and checked in the same situation, built once."""
    from arena_vllm.agent import policy
    from arena_vllm.agent.game_tools.situation import Situation

    built: list[Situation] = []

    class Counted(Situation):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(policy, "Situation", Counted)
    backend = Answering(called("idle", {}))
    [decision] = await DecisionPolicy(backend, COORDINATES, AgentMetrics()).decide_tick([OBS])  # type: ignore[arg-type]
    assert decision.source == "native" and len(built) == 1
