"""Agent Arena SDK shapes of a stored trace: what its ``/debug/*`` endpoints and CLI read.

One function per SDK class the endpoints answer with (``DebugTrace``, ``DecisionCapture``,
``ObservationEntry``), so :mod:`~arena_vllm.agent.debug` keeps only the switch and the routes.

Example::

    from arena_vllm.agent.sdk_shapes import sdk_trace

    steps = [step["name"] for step in sdk_trace(store.get(trace_id))["steps"]]
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from arena_vllm.agent.traces import CallRecord, ReadTrace


def _iso(epoch: float) -> str:
    """The SDK's timestamps: ISO 8601 in UTC."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _last_call(trace: ReadTrace) -> CallRecord | None:
    calls = trace.get("calls") or []
    return calls[-1] if calls else None


def _decision_data(trace: ReadTrace) -> dict[str, Any]:
    decision = trace.get("decision") or {}
    return {
        "tool": decision.get("tool", ""),
        "params": decision.get("params", {}),
        "reasoning": decision.get("reasoning", ""),
        "source": trace.get("source", ""),
        "fallback_reason": trace.get("fallback_reason"),
        "total_latency_ms": trace["timings_ms"]["total"],
        "timings_ms": trace["timings_ms"],
        **({"error": trace["fallback_reason"]} if trace.get("fallback_reason") else {}),
    }


def sdk_trace(trace: ReadTrace) -> dict[str, Any]:
    """A trace in the shape of the SDK's ``DebugTrace.to_dict()``, steps as its ``_record_decision_trace`` adds them."""
    start, timings = trace["start_time"], trace["timings_ms"]
    obs = trace["observation"]
    steps: list[tuple[str, Any, float]] = [
        (
            "observation",
            {
                "position": obs.get("position", []),
                "health": obs.get("health"),
                "energy": obs.get("energy"),
                "nearby_resources": len(obs.get("nearby_resources", [])),
                "nearby_hazards": len(obs.get("nearby_hazards", [])),
            },
            0.0,
        )
    ]
    call = _last_call(trace)
    if call is not None:
        response = call.get("response") or {}
        queued = call["queue_ms"] or 0.0
        answered = queued + (call["model_ms"] or 0.0)
        steps += [
            (
                "prompt",
                {
                    "system_prompt": call["system_prompt"],
                    "user_prompt": call["user_prompt"],
                    "prompt_tokens": (trace.get("prompt") or {}).get("prompt_tokens"),
                    "tools": call["tools"],
                },
                queued,
            ),
            (
                "llm_response",
                {
                    "raw_output": response.get("raw_text", ""),
                    "tokens_used": response.get("tokens_used", 0),
                    "finish_reason": response.get("finish_reason"),
                    "error": call.get("error"),
                },
                answered,
            ),
            (
                "parse",
                {
                    "method": response.get("tool_call_source", "none"),
                    "parsed_json": response.get("tool_call"),
                    "error": response.get("tool_call_error"),
                },
                answered,
            ),
        ]
    steps.append(("decision", _decision_data(trace), timings["total"]))
    return {
        "agent_id": trace["agent_id"],
        "tick": trace["tick"],
        "episode_id": "",
        "trace_id": trace["trace_id"],
        "start_time": start,
        "steps": [
            {"name": name, "data": data, "timestamp": start + ms / 1000, "elapsed_ms": ms} for name, data, ms in steps
        ],
    }


def sdk_capture(trace: ReadTrace) -> dict[str, Any]:
    """A trace in the shape of the SDK's ``DecisionCapture.to_dict()`` (PromptInspector stages)."""
    start = trace["start_time"]
    stages: list[tuple[str, dict[str, Any], float]] = [
        ("observation", _sdk_observation_data(trace["observation"]), 0.0)
    ]
    call = _last_call(trace)
    if call is not None:
        response = call.get("response") or {}
        prompt = trace.get("prompt") or {}
        tokens = prompt.get("prompt_tokens")
        queued = call["queue_ms"] or 0.0
        answered = queued + (call["model_ms"] or 0.0)
        stages += [
            (
                "prompt_building",
                {
                    "system_prompt": call["system_prompt"],
                    "memory_context": {"count": 0, "items": []},
                    "final_prompt": call["user_prompt"],
                    "prompt_length": prompt.get("chars", 0),
                    # the server's count when the response's usage gave it, else the SDK's rough chars/4
                    "estimated_tokens": tokens if tokens is not None else prompt.get("chars", 0) // 4,
                    "prompt_tokens": tokens,
                },
                0.0,
            ),
            (
                "llm_request",
                {
                    "model": response.get("model", ""),
                    "prompt": call["user_prompt"],
                    "tools": call["tools"],
                    "tool_choice": call["tool_choice"],
                    "temperature": call["temperature"],
                    "max_tokens": call["max_tokens"],
                },
                queued,
            ),
            (
                "llm_response",
                {
                    "raw_text": response.get("raw_text", ""),
                    "tokens_used": response.get("tokens_used", 0),
                    "finish_reason": response.get("finish_reason"),
                    "latency_ms": call["model_ms"] or 0.0,
                    "metadata": {
                        k: response[k]
                        for k in ("tool_call", "tool_call_error", "tool_call_source", "prompt_reason")
                        if k in response
                    },
                    "error": call.get("error"),
                },
                answered,
            ),
        ]
    stages.append(("decision", _decision_data(trace), trace["timings_ms"]["total"]))
    return {
        "agent_id": trace["agent_id"],
        "tick": trace["tick"],
        "start_time": _iso(start),
        "entries": [
            {
                "timestamp": _iso(start + ms / 1000),
                "agent_id": trace["agent_id"],
                "tick": trace["tick"],
                "stage": stage,
                "data": data,
            }
            for stage, data, ms in stages
        ],
    }


def _sdk_observation_data(obs: dict[str, Any]) -> dict[str, Any]:
    """The observation as the SDK's CLI reads it: every resource and hazard with a distance, inventory a list."""
    here = obs.get("position", [0.0, 0.0, 0.0])

    def with_distance(entity: dict[str, Any]) -> dict[str, Any]:
        if entity.get("distance") is not None:
            return entity
        return {**entity, "distance": math.dist(here, entity.get("position", here))}

    inventory = obs.get("inventory", [])
    if isinstance(inventory, dict):
        inventory = [{"name": name, "quantity": count} for name, count in inventory.items()]
    return {
        **obs,
        "inventory": inventory,
        **{key: [with_distance(e) for e in obs.get(key, [])] for key in ("nearby_resources", "nearby_hazards")},
    }


def sdk_observation(trace: ReadTrace) -> dict[str, Any]:
    """A trace's observation in the shape of the SDK's ``ObservationEntry.to_dict()``."""
    obs = trace["observation"]
    return {
        "tick": trace["tick"],
        "agent_id": trace["agent_id"],
        "timestamp": _iso(trace["start_time"]),
        "position": obs.get("position", [0, 0, 0]),
        **trace["visibility"],
        "raw_observation": obs,
    }
