"""Records one trace per decision into a :class:`~arena_vllm.agent.traces.TraceStore`.

The policy marks where a decision starts and ends (:meth:`TraceRecorder.decision`); the
backend, wrapped by :meth:`TraceRecorder.watch`, fills in what the model was actually sent
and what it answered: the prompt, the tools offered (as narrowed for this agent), sampling,
the raw answer, token counts, and when the call started and ended. The two meet through a
context variable: each agent's decision runs in its own asyncio task, and the tasks a call
starts inside it (``asyncio.wait_for``) see the same trace. So the policy needs one ``with``
and knows nothing of what is recorded.

Example::

    recorder = TraceRecorder(TraceStore(ticks_per_agent=50, max_bytes=16 << 20))
    policy = DecisionPolicy(recorder.watch(backend), settings, metrics, recorder=recorder)
    # inside the policy, per agent:
    with recorder.decision(observation) as trace:
        decision, source = await decide(...)
        trace.decided(decision, source)
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from arena_vllm.agent.traces import CallRecord, Trace, TraceStore
from arena_vllm.backends import GenerationResult, LLMBackend
from arena_vllm.tool_shapes import ToolLike, normalize_tools

_CURRENT: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("arena_decision_trace", default=None)


@dataclass
class _Trace:
    """One decision being made; filled by the policy (observation, decision) and the backend (the call)."""

    observation: BaseModel
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    calls: list[CallRecord] = field(default_factory=list)
    decision: dict[str, Any] | None = None
    source: str = ""
    fallback_reason: str | None = None

    def decided(self, decision: BaseModel, source: str, reason: str | None = None) -> None:
        """The decision the game gets, where it came from (model, fallback...) and, if not the model's, why."""
        self.decision = decision.model_dump(mode="json")
        self.source = source
        self.fallback_reason = reason


class _NoTrace:
    def decided(self, decision: BaseModel, source: str, reason: str | None = None) -> None:
        """Nothing is recorded."""


class TraceRecorder:
    """Builds decision traces and stores them; ``TraceRecorder(None)`` records nothing (debug off).

    Example::

        recorder = TraceRecorder(store)
        backend = recorder.watch(backend)    # the policy's backend
    """

    def __init__(self, store: TraceStore | None) -> None:
        self.store = store

    @contextlib.contextmanager
    def decision(self, observation: BaseModel) -> Iterator[_Trace | _NoTrace]:
        """Around one agent's decision: yields the trace to call ``decided`` on; stores it on the way out."""
        if self.store is None:
            yield _NoTrace()
            return
        trace = _Trace(observation)
        token = _CURRENT.set(trace)
        try:
            yield trace
        finally:
            _CURRENT.reset(token)
            if trace.decision is not None:
                self.store.add(_as_dict(trace))

    def watch(self, backend: LLMBackend) -> LLMBackend:
        """``backend``, telling this recorder about every tool call it makes (itself when recording is off)."""
        return backend if self.store is None else _WatchedBackend(backend)  # type: ignore[return-value]


class _WatchedBackend:
    """Passes everything to the backend; tool calls made inside a recorded decision are added to its trace."""

    def __init__(self, backend: LLMBackend) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def agenerate_with_tools(
        self,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult:
        trace = _CURRENT.get()
        if trace is None:
            return await self._backend.agenerate_with_tools(
                prompt, tools, system_prompt, tool_choice, temperature, max_tokens
            )
        call: CallRecord = {
            "system_prompt": system_prompt or "",
            "user_prompt": prompt,
            "tools": _flat(tools),
            "tool_choice": tool_choice,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "queue_ms": _ms(time.perf_counter() - trace.started),
            "model_ms": None,
            "response": None,
            "error": None,
        }
        trace.calls.append(call)
        started = time.perf_counter()
        try:
            result = await self._backend.agenerate_with_tools(
                prompt, tools, system_prompt, tool_choice, temperature, max_tokens
            )
        except BaseException as exc:  # a timeout cancels the call: say so, then let it go on
            call["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise
        finally:
            call["model_ms"] = _ms(time.perf_counter() - started)
        call["response"] = {
            "raw_text": result.text,
            "finish_reason": result.finish_reason,
            "tokens_used": result.tokens_used,
            **{key: result.metadata.get(key) for key in _RESPONSE_KEYS if key in result.metadata},
        }
        return result


#: What of a result's metadata a trace keeps (all of it but latency, which the trace times itself).
_RESPONSE_KEYS = (
    "model",
    "prompt_tokens",
    "completion_tokens",
    "tool_call",
    "tool_call_error",
    "tool_call_source",
    "prompt_reason",
    "tools_seen_in",
)


def _flat(tools: Sequence[ToolLike]) -> list[dict[str, Any]]:
    """The tools as offered, flat ``{name, description, parameters}`` (their per-agent enums included)."""
    try:
        return [{"description": "", **tool["function"]} for tool in normalize_tools(tools)]  # the SDK's shape has one
    except (ValueError, TypeError, KeyError):
        return [{"unreadable": repr(tools)[:500]}]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _as_dict(trace: _Trace) -> Trace:
    """The stored form: everything the endpoints and the page show, JSON-able."""
    observation = trace.observation.model_dump(mode="json", exclude_none=True)
    call = trace.calls[-1] if trace.calls else None
    response = (call or {}).get("response") or {}
    return {
        "trace_id": uuid.uuid4().hex[:8],
        "agent_id": observation.get("agent_id", ""),
        "tick": observation.get("tick", 0),
        "start_time": trace.started_at,
        "observation": observation,
        "prompt": None
        if call is None
        else {
            "system_prompt": call["system_prompt"],
            "user_prompt": call["user_prompt"],
            "chars": len(call["system_prompt"]) + len(call["user_prompt"]),
            "prompt_tokens": response.get("prompt_tokens"),
        },
        "calls": trace.calls,
        "decision": trace.decision,
        "source": trace.source,
        "fallback_reason": trace.fallback_reason,
        "timings_ms": {
            "queue": None if call is None else call["queue_ms"],
            "model": None if call is None else sum(c["model_ms"] or 0 for c in trace.calls),
            "total": _ms(time.perf_counter() - trace.started),
        },
    }
