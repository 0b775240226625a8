"""Observations -> game-executable decisions through the backend, concurrently, always answering in time.

A tick's agents are decided at once so vLLM's continuous batching serves them together
(Agent Arena's own server called the model once per agent, one after another). Each agent gets
its own tools (:func:`~arena_vllm.agent.actions.tools_for`: enums of the names it sees) and
its own prompt, after the scene's shared system prompt. The tick has one deadline; an agent
whose call fails, runs past it, or yields no call the game can carry out gets the SDK-order
fallback (:mod:`~arena_vllm.agent.fallback`), or ``idle`` when that is switched off. Every
decision says why in ``reasoning`` and how it was made in ``source``; for a failure the reason
is generic (:data:`GENERIC_REASONS`) and the details go to the log and ``/metrics`` only.
Each request stays within ``agent.prompt_budget_bytes`` (:func:`plan_call`).

Sampling (temperature, max_tokens, tool_choice) is read from ``settings.backend``; a forced
call's ``max_tokens`` can be capped at the longest call the agent's tools allow
(:func:`~arena_vllm.backends.call_bound.max_call_tokens`, ``backend.max_tokens_from_tools``).

Example::

    import asyncio
    from arena_vllm.agent.metrics import AgentMetrics
    from arena_vllm.agent.policy import DecisionPolicy
    from arena_vllm.agent.schemas import Observation
    from arena_vllm.backends import VLLMBackend, VLLMBackendConfig
    from arena_vllm.config import load_settings

    settings = load_settings()
    backend = VLLMBackend(VLLMBackendConfig.from_settings(settings.backend))
    policy = DecisionPolicy(backend, settings, AgentMetrics())
    obs = Observation.model_validate({"agent_id": "a1", "position": [0, 0, 0]})
    print(asyncio.run(policy.decide_tick([obs])))
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from arena_vllm.agent.actions import tools_in
from arena_vllm.agent.experiences import ExperienceStore
from arena_vllm.agent.fallback import bounded, fallback_decision
from arena_vllm.agent.game_tools import game_tool
from arena_vllm.agent.game_tools.situation import Situation
from arena_vllm.agent.metrics import AgentMetrics
from arena_vllm.agent.prompt import PRIORITY, fit_lines, prompt_lines
from arena_vllm.agent.recorder import TraceRecorder
from arena_vllm.agent.schemas import Decision, Observation
from arena_vllm.backends import BackendError, GenerationResult, LLMBackend
from arena_vllm.backends.call_bound import UnboundedCallError, max_call_tokens
from arena_vllm.config import Settings
from arena_vllm.tool_shapes import CHOICES_WITHOUT_A_NAME, normalize_tools

logger = logging.getLogger(__name__)
#: The ``source`` of a decision that is ``idle`` because the model gave none (fallback switched off).
IDLE_AFTER_FAILURE = "idle_after_failure"
#: The ``source`` of the policy's heuristic decision after a failed or late call.
FALLBACK = "fallback"
#: Sources of decisions the model did not make (the inspector shows why).
NOT_THE_MODEL = (FALLBACK, IDLE_AFTER_FAILURE)
#: What the game is told when the model gave no usable decision, by failure kind: generic on
#: purpose. The details (exception text, the backend's URL, the model's rejected call) go to the
#: log and the ``/debug`` inspector when it is on, the kind to ``arena_agent_backend_errors_total{kind}``;
#: the game and whoever reads its logs learn nothing about the deployment.
GENERIC_REASONS = {
    "deadline": "model call timed out",
    "no_valid_call": "model gave no usable call",
    "unknown_tool": "model gave no usable call",
    "not_executable": "model's call not executable",
    "internal": "internal error",
}
#: For a kind not above (a backend error class name).
MODEL_CALL_FAILED = "model call failed"


@dataclass(frozen=True)
class CallPlan:
    """Everything one agent's model call is made of; the benchmarks send the same straight to vLLM."""

    system_prompt: str
    prompt: str
    tools: list[dict[str, Any]]
    tool_choice: str
    max_tokens: int
    #: The agent's situation the tools were narrowed in: the call is resolved and checked in the same one.
    situation: Situation | None = field(default=None, compare=False, repr=False)

    @property
    def size_bytes(self) -> int:
        """UTF-8 bytes of system prompt + tools JSON + user prompt: what ``agent.prompt_budget_bytes`` bounds."""
        return request_bytes(self.system_prompt, self.tools, self.prompt)


def request_bytes(system_prompt: str, tools: list[dict[str, Any]], prompt: str) -> int:
    """The size ``agent.prompt_budget_bytes`` counts: the tools as sent (OpenAI-shaped, ASCII-escaped JSON, as chat
    templates write them with ``tojson``), the prompts as UTF-8."""
    sent = json.dumps(normalize_tools(tools)) if tools else ""
    return len(system_prompt.encode()) + len(sent.encode()) + len(prompt.encode())


def plan_call(observation: Observation, settings: Settings, experiences: ExperienceStore | None = None) -> CallPlan:
    """The scene's system prompt, this agent's prompt and narrowed tools, and the tool_choice for them.

    The whole request stays within ``agent.prompt_budget_bytes``: over it, the prompt's
    lowest-priority lines are dropped (:func:`~arena_vllm.agent.prompt.fit_lines`); when even
    the header, hazards and resources do not fit, every list (and the tools' enums) gets one
    entry fewer, down to none (then only the header is sure to stay). A ``tool_choice`` naming a tool this agent does not have now (``collect``
    with nothing in reach) becomes ``required``: a call among what it can do.
    """
    recent = experiences.recent(observation.agent_id) if experiences is not None else ()
    budget = settings.agent.prompt_budget_bytes
    for cap in range(settings.agent.max_entities_in_prompt, -1, -1):
        here = Situation(observation, settings, cap)
        tools = tools_in(here)
        recipes = here.recipes_in_sight()
        lines = prompt_lines(observation, cap, recent, recipes, positions=settings.scene.move_targets == "coordinates")
        room = budget - request_bytes(settings.scene.system_prompt, tools, "")
        # Hazards and resources are worth more than every list's length: keep them, else shorten every list.
        prompt = fit_lines(lines, room, keep=PRIORITY["Resources"]) if cap else fit_lines(lines, room)
        if prompt is not None:
            break
    else:  # only when the scene's own system prompt and tools exceed the budget: send the header alone
        logger.warning(
            "agent.prompt_budget_bytes=%d is too small for scene %r's system prompt and tools",
            budget,
            settings.scene.name,
        )
        prompt = lines[0][1]
    choice = settings.backend.function_calling.tool_choice
    if choice not in CHOICES_WITHOUT_A_NAME and choice not in {t["name"] for t in tools}:
        choice = "required"  # the configured tool is not offered to this agent now
    max_tokens = call_max_tokens(tools, choice, settings)
    return CallPlan(settings.scene.system_prompt, prompt, tools, choice, max_tokens, here)


def call_max_tokens(tools: list[dict[str, Any]], tool_choice: str, settings: Settings) -> int:
    """``backend.max_tokens``, capped at the longest call of ``tools`` when a call is forced and
    ``backend.max_tokens_from_tools`` is on.

    With ``auto`` the model may write text first, which has no bound; a tool set
    with an unbounded parameter (a tool added to configs/tools without bounds) keeps the setting.
    """
    configured = settings.backend.max_tokens
    if not settings.backend.max_tokens_from_tools or tool_choice == "auto":
        return configured
    try:
        return min(configured, max_call_tokens(tools))
    except UnboundedCallError:
        return configured


class DecisionPolicy:
    """Decides for agents with the backend; failures become the fallback with a reason, never exceptions.

    Example::

        policy = DecisionPolicy(backend, settings, AgentMetrics(), ExperienceStore(5, 1024))
        first, second = await policy.decide_tick([obs_a, obs_b])  # one shared deadline
    """

    def __init__(
        self,
        backend: LLMBackend,
        settings: Settings,
        metrics: AgentMetrics,
        experiences: ExperienceStore | None = None,
        recorder: TraceRecorder | None = None,
    ) -> None:
        self._recorder = recorder or TraceRecorder(None)  # the /debug inspector's traces; None records nothing
        self._backend = self._recorder.watch(backend)
        self._settings = settings
        self._metrics = metrics
        self._experiences = experiences
        self._temperature = settings.backend.temperature
        self._deadline_s = settings.agent.tick_deadline_s
        # Bounds model calls across all requests, so a burst of ticks queues here, not in vLLM.
        self._slots = asyncio.Semaphore(settings.agent.max_concurrency)

    async def decide_tick(self, observations: Sequence[Observation]) -> list[Decision]:
        """One decision per observation, in input order, all within one ``tick_deadline_s``."""
        deadline = asyncio.get_running_loop().time() + self._deadline_s
        results = await asyncio.gather(*(self._decide(obs, deadline) for obs in observations))
        decisions = [decision for decision, _ in results]
        details = sorted({detail for _, detail in results if detail})
        if details:  # one line per tick, not per agent: a broken engine would flood the log
            failed = sum(1 for _, detail in results if detail)
            logger.warning(
                "%d of %d agents got no model decision; e.g.: %s", failed, len(decisions), "; ".join(details[:3])
            )
        return decisions

    async def _decide(self, observation: Observation, deadline: float) -> tuple[Decision, str | None]:
        """The decision, and what went wrong for the log (None when the model decided)."""
        started = time.perf_counter()
        with self._recorder.decision(observation) as trace:
            decision, detail = await self._attempt(observation, deadline)
            # The inspector (an operator's view, loopback-only by default) gets the details, as the log does.
            trace.decided(decision, decision.source, detail if decision.source in NOT_THE_MODEL else None)
        self._metrics.latency.observe(time.perf_counter() - started)
        self._metrics.decisions.labels(tool=decision.tool, source=decision.source).inc()
        return decision, detail

    async def _attempt(self, observation: Observation, deadline: float) -> tuple[Decision, str | None]:
        plan = plan_call(observation, self._settings, self._experiences)
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            result = await asyncio.wait_for(self._call(plan), timeout=remaining)
        except asyncio.TimeoutError:  # noqa: UP041 - the builtin TimeoutError only from Python 3.11
            return self._failed(
                observation, "deadline", f"no decision within the tick deadline of {self._deadline_s:g} s"
            )
        except BackendError as exc:
            return self._failed(observation, type(exc).__name__, f"backend error ({type(exc).__name__}): {exc}")
        except Exception as exc:  # a bug here must cost one agent a fallback, not the game a 500
            logger.exception("decision for agent %s failed", observation.agent_id)
            return self._failed(observation, "internal", f"internal error ({type(exc).__name__}): {exc}")
        return self._check(result, observation, plan)

    async def _call(self, plan: CallPlan) -> GenerationResult:
        async with self._slots:
            with self._metrics.in_flight.track_inprogress():
                return await self._backend.agenerate_with_tools(
                    plan.prompt,
                    plan.tools,
                    system_prompt=plan.system_prompt,
                    tool_choice=plan.tool_choice,
                    temperature=self._temperature,
                    max_tokens=plan.max_tokens,
                )

    def _check(self, result: GenerationResult, observation: Observation, plan: CallPlan) -> tuple[Decision, str | None]:
        """The backend's schema-valid call, if this agent could be given it and the game can carry it out."""
        call: dict[str, Any] | None = result.metadata.get("tool_call")
        if call is None:
            why = result.metadata.get("tool_call_error") or "the model made no tool call"
            return self._failed(observation, "no_valid_call", f"no valid tool call: {why}")
        offered = [tool["name"] for tool in plan.tools]
        if call["name"] not in offered:
            return self._failed(observation, "unknown_tool", f"the model called {call['name']!r}, not one of {offered}")
        try:  # JSON schemas let NaN through (every comparison with it is false); the game cannot use it
            json.dumps(call["arguments"], allow_nan=False)
        except ValueError:
            return self._failed(
                observation, "no_valid_call", f"the {call['name']!r} call has NaN or Infinity in its arguments"
            )
        here = plan.situation or Situation(observation, self._settings)
        tool = game_tool(call["name"])
        params = tool.resolve(call["arguments"], here)
        if params is None:
            return self._failed(
                observation, "not_executable", f"the {call['name']!r} call names nothing in sight: {call['arguments']}"
            )
        problem = tool.problem(params, here)
        if problem:
            return self._failed(observation, "not_executable", f"not executable in the game: {problem}")
        source = result.metadata.get("tool_call_source", "native")  # the decision's source names the same paths
        said = result.text.strip() if source == "native" else ""  # a text call's text is the call itself
        reasoning = f"model: {tool.describe(call['arguments'], here)}" + (f"; {said}" if said else "")
        return Decision(tool=call["name"], params=params, reasoning=bounded(reasoning), source=source), None

    def _failed(self, observation: Observation, kind: str, detail: str) -> tuple[Decision, str]:
        """The fallback (or idle) with a generic reason for the game; ``detail`` is returned for the log only."""
        self._metrics.backend_errors.labels(kind=kind).inc()
        reason = GENERIC_REASONS.get(kind, MODEL_CALL_FAILED)
        if self._settings.agent.fallback.enabled:
            decision = fallback_decision(observation, self._settings, reason)
        else:
            decision = Decision.idle(reason)
        return decision, f"agent {json.dumps(observation.agent_id)}: {bounded(detail)}"
