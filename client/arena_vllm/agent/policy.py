"""Observations -> decisions through the backend, concurrently, always answering in time.

A tick's agents are decided at once so vLLM's continuous batching serves them together
(Agent Arena's own server called the model once per agent, one after another). The tick has
one deadline; an agent whose call fails, runs past it, or yields no valid tool call gets
``idle`` with a reasoning that says what went wrong: the game always gets an action.

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
from typing import Any

from arena_vllm.agent.metrics import AgentMetrics
from arena_vllm.agent.prompt import render_observation
from arena_vllm.agent.recorder import TraceRecorder
from arena_vllm.agent.schemas import Decision, Observation
from arena_vllm.backends import BackendError, GenerationResult, LLMBackend
from arena_vllm.config import Settings

logger = logging.getLogger(__name__)
#: The ``source`` of a decision that is ``idle`` because the model gave none.
IDLE_AFTER_FAILURE = "idle_after_failure"


class DecisionPolicy:
    """Decides for agents with the backend; failures become ``idle`` with a reason, never exceptions.

    Example::

        policy = DecisionPolicy(backend, settings, AgentMetrics())
        first, second = await policy.decide_tick([obs_a, obs_b])  # one shared deadline
    """

    def __init__(
        self, backend: LLMBackend, settings: Settings, metrics: AgentMetrics, recorder: TraceRecorder | None = None
    ) -> None:
        agent = settings.agent
        self._recorder = recorder or TraceRecorder(None)  # the /debug inspector's traces; None records nothing
        self._backend = self._recorder.watch(backend)
        self._metrics = metrics
        self._tools = [tool.model_dump() for tool in settings.tools.tools]
        self._tool_names = frozenset(tool.name for tool in settings.tools.tools)
        self._system_prompt = agent.system_prompt
        self._tool_choice = agent.tool_choice
        self._temperature = agent.temperature
        self._max_tokens = agent.max_tokens
        self._max_entities = agent.max_entities_in_prompt
        self._deadline_s = agent.tick_deadline_s
        # Bounds model calls across all requests, so a burst of ticks queues here, not in vLLM.
        self._slots = asyncio.Semaphore(agent.max_concurrency)

    async def decide_tick(self, observations: Sequence[Observation]) -> list[Decision]:
        """One decision per observation, in input order, all within one ``tick_deadline_s``."""
        deadline = asyncio.get_running_loop().time() + self._deadline_s
        outcomes = await asyncio.gather(*(self._decide(obs, deadline) for obs in observations))
        failed = sorted({d.reasoning for d, source in outcomes if source == IDLE_AFTER_FAILURE})
        if failed:  # one line per tick, not per agent: a broken engine would flood the log
            count = sum(source == IDLE_AFTER_FAILURE for _, source in outcomes)
            logger.warning("%d of %d agents got idle; reasons: %s", count, len(outcomes), "; ".join(failed[:3]))
        return [decision for decision, _ in outcomes]

    async def _decide(self, observation: Observation, deadline: float) -> tuple[Decision, str]:
        started = time.perf_counter()
        with self._recorder.decision(observation) as trace:
            decision, source = await self._attempt(observation, deadline)
            trace.decided(decision, source, decision.reasoning if source == IDLE_AFTER_FAILURE else None)
        self._metrics.latency.observe(time.perf_counter() - started)
        self._metrics.decisions.labels(tool=decision.tool, source=source).inc()
        return decision, source

    async def _attempt(self, observation: Observation, deadline: float) -> tuple[Decision, str]:
        """The decision and its source (native, fallback, idle_after_failure)."""
        prompt = render_observation(observation, self._max_entities)
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            result = await asyncio.wait_for(self._call(prompt), timeout=remaining)
        except asyncio.TimeoutError:  # noqa: UP041 - the builtin TimeoutError only from Python 3.11
            return self._failed("deadline", f"no decision within the tick deadline of {self._deadline_s:g} s")
        except BackendError as exc:
            return self._failed(type(exc).__name__, f"backend error ({type(exc).__name__}): {exc}")
        except Exception as exc:  # a bug here must cost one agent an idle tick, not the game a 500
            logger.exception("decision for agent %s failed", observation.agent_id)
            return self._failed("internal", f"internal error ({type(exc).__name__}): {exc}")
        return self._check(result)

    async def _call(self, prompt: str) -> GenerationResult:
        async with self._slots:
            with self._metrics.in_flight.track_inprogress():
                return await self._backend.agenerate_with_tools(
                    prompt,
                    self._tools,
                    system_prompt=self._system_prompt,
                    tool_choice=self._tool_choice,
                    temperature=self._temperature,
                    max_tokens=self._max_tokens,
                )

    def _check(self, result: GenerationResult) -> tuple[Decision, str]:
        """The backend's schema-valid call, if it names a configured tool (which also bounds the metric's labels)."""
        call: dict[str, Any] | None = result.metadata.get("tool_call")
        if call is None:
            why = result.metadata.get("tool_call_error") or "the model made no tool call"
            return self._failed("no_valid_call", f"no valid tool call: {why}")
        if call["name"] not in self._tool_names:
            return self._failed("unknown_tool", f"the model called {call['name']!r}, not one of {sorted(self._tool_names)}")
        try:  # JSON schemas let NaN through (every comparison with it is false); the game cannot use it
            json.dumps(call["arguments"], allow_nan=False)
        except ValueError:
            return self._failed("no_valid_call", f"the {call['name']!r} call has NaN or Infinity in its arguments")
        source = result.metadata["tool_call_source"]
        said = result.text.strip() if source == "native" else ""  # a fallback's text is the call itself
        reasoning = f"{source} tool call" + (f": {said}" if said else "")
        return Decision(tool=call["name"], params=call["arguments"], reasoning=reasoning), source

    def _failed(self, kind: str, reason: str) -> tuple[Decision, str]:
        self._metrics.backend_errors.labels(kind=kind).inc()
        return Decision.idle(reason), IDLE_AFTER_FAILURE
