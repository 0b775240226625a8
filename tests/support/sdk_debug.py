"""What Agent Arena's SDK server answers on ``/debug/*``: samples built the way its code builds them.

Source: JustInternetAI/AgentArena at bf2cafb2, python/sdk/agent_arena_sdk/server/
ipc_server.py (``_register_debug_endpoints``, ``_record_decision_trace``), debug_store.py
(``DebugTrace.to_dict``, ``DebugTraceStep.to_dict``), debug_middleware.py
(``ObservationEntry.to_dict``), and python/agent_runtime/prompt_inspector.py
(``DecisionCapture.to_dict``, ``InspectorEntry.to_dict``) with the stage data that
docs/testing_prompt_inspector.md documents and python/tools/inspect_prompts.py reads.
Values are examples; the keys and the JSON types are what a client of the SDK relies on.
``None`` means the SDK itself may send null or any type there.

Example::

    assert_shape(our_response, SDK_RESPONSES["/debug/traces"])
"""

from __future__ import annotations

from typing import Any

#: ``DebugTrace.to_dict()``, with the steps ``_record_decision_trace`` adds for an LLM agent.
SDK_TRACE: dict[str, Any] = {
    "agent_id": "forager_1",
    "tick": 42,
    "episode_id": "",
    "trace_id": "1a2b3c4d",
    "start_time": 1764100000.5,
    "steps": [
        {
            "name": "observation",
            "timestamp": 1764100000.5,
            "elapsed_ms": 0.01,
            "data": {
                "position": [0.0, 0.0, 0.0],
                "health": 90.0,
                "energy": 75.5,
                "nearby_resources": 2,
                "nearby_hazards": 1,
            },
        },
        {
            "name": "prompt",
            "timestamp": 1764100000.5,
            "elapsed_ms": 0.02,
            "data": {"system_prompt": "You are...", "user_prompt": "Tick 42..."},
        },
        {
            "name": "llm_response",
            "timestamp": 1764100001.0,
            "elapsed_ms": 500.0,
            "data": {"raw_output": "{...}", "tokens_used": 45, "finish_reason": None},
        },
        {
            "name": "parse",
            "timestamp": 1764100001.0,
            "elapsed_ms": 500.1,
            "data": {"method": "json", "parsed_json": None},
        },
        {
            "name": "decision",
            "timestamp": 1764100001.0,
            "elapsed_ms": 500.2,
            "data": {"tool": "move_to", "params": {}, "reasoning": "nearest berry"},
        },
    ],
}

#: ``DecisionCapture.to_dict()`` with the five ``InspectorStage`` entries and the data keys the CLI reads.
SDK_CAPTURE: dict[str, Any] = {
    "agent_id": "forager_1",
    "tick": 42,
    "start_time": "2026-11-25T20:00:00.000000Z",
    "entries": [
        {
            "timestamp": "2026-11-25T20:00:00.000000Z",
            "agent_id": "forager_1",
            "tick": 42,
            "stage": "observation",
            "data": {
                "agent_id": "forager_1",
                "tick": 42,
                "position": [0.0, 0.0, 0.0],
                "health": 90.0,
                "energy": 75.5,
                "nearby_resources": [
                    {"name": "berry_1", "type": "berry", "distance": 5.0, "position": [3.0, 0.0, 4.0]}
                ],
                "nearby_hazards": [],
            },
        },
        {
            "timestamp": "2026-11-25T20:00:00.000000Z",
            "agent_id": "forager_1",
            "tick": 42,
            "stage": "prompt_building",
            "data": {
                "system_prompt": "You are...",
                "memory_context": {"count": 0, "items": []},
                "final_prompt": "Tick 42...",
                "prompt_length": 1250,
                "estimated_tokens": 312,
            },
        },
        {
            "timestamp": "2026-11-25T20:00:00.000000Z",
            "agent_id": "forager_1",
            "tick": 42,
            "stage": "llm_request",
            "data": {
                "model": "tiny",
                "prompt": "Tick 42...",
                "tools": [{"name": "move_to", "description": "Move"}],
                "temperature": 0.7,
                "max_tokens": 256,
            },
        },
        {
            "timestamp": "2026-11-25T20:00:00.000000Z",
            "agent_id": "forager_1",
            "tick": 42,
            "stage": "llm_response",
            "data": {"raw_text": "...", "tokens_used": 45, "finish_reason": None, "metadata": {}, "latency_ms": 342.0},
        },  # the result's metadata: tool_call when there was one
        {
            "timestamp": "2026-11-25T20:00:00.000000Z",
            "agent_id": "forager_1",
            "tick": 42,
            "stage": "decision",
            "data": {"tool": "move_to", "params": {}, "reasoning": "nearest berry", "total_latency_ms": 345.0},
        },
    ],
}

#: ``ObservationEntry.to_dict()``.
SDK_OBSERVATION: dict[str, Any] = {
    "tick": 42,
    "agent_id": "forager_1",
    "timestamp": "2026-11-25T20:00:00.000000+00:00",
    "position": [0.0, 0.0, 0.0],
    "visible_resources": ["berry_1"],
    "visible_hazards": [],
    "gained_resources": ["berry_1"],
    "lost_resources": [],
    "gained_hazards": [],
    "lost_hazards": [],
    "raw_observation": {"agent_id": "forager_1", "tick": 42, "position": [0.0, 0.0, 0.0]},
}

#: Each endpoint's answer (lists hold one sample item, checked against every item).
SDK_RESPONSES: dict[str, Any] = {
    "/debug/traces": {"traces": [SDK_TRACE], "count": 1},
    "/debug/prompts": {"captures": [SDK_CAPTURE], "count": 1},
    "/debug/observations": {"observations": [SDK_OBSERVATION], "count": 1},
    "/debug/changes": {"changes": [SDK_OBSERVATION], "count": 1},
    "/debug/agents": {"agents": ["forager_1"]},
    "/debug/reset": {"status": "reset"},
}

#: The query parameters each GET endpoint takes in the SDK, with ``limit``'s bounds (1..1000, default 50).
SDK_QUERY: dict[str, tuple[str, ...]] = {
    "/debug/traces": ("limit", "agent_id", "tick_start", "tick_end", "tool"),
    "/debug/prompts": ("agent_id", "tick", "tick_start", "tick_end"),
    "/debug/observations": ("limit", "agent_id"),
    "/debug/changes": ("limit", "agent_id"),
    "/debug/episodes": ("agent_id",),
}


def assert_shape(ours: Any, sdk: Any, path: str = "$") -> None:
    """Every key of ``sdk`` is in ``ours`` with the same JSON type (numbers are one type); lists item by item.

    Steps and stages are matched by name, so the SDK's order need not be ours, and a step the
    SDK sample has must be there (except those only an LLM call produces, when ``ours`` made none).
    """
    if sdk is None:
        return
    if isinstance(sdk, dict):
        assert isinstance(ours, dict), f"{path}: expected an object, got {ours!r:.200}"
        missing = sorted(set(sdk) - set(ours))
        assert not missing, f"{path}: missing keys {missing} (have {sorted(ours)})"
        for key, value in sdk.items():
            if key in ("steps", "entries"):
                _assert_named(ours[key], value, f"{path}.{key}")
            else:
                assert_shape(ours[key], value, f"{path}.{key}")
    elif isinstance(sdk, list):
        assert isinstance(ours, list), f"{path}: expected a list, got {ours!r:.200}"
        if sdk:
            for index, item in enumerate(ours):
                assert_shape(item, sdk[0], f"{path}[{index}]")
    elif isinstance(sdk, bool):
        assert isinstance(ours, bool), f"{path}: expected a boolean, got {ours!r:.200}"
    elif isinstance(sdk, (int, float)):
        assert isinstance(ours, (int, float)) and not isinstance(ours, bool), (
            f"{path}: expected a number, got {ours!r:.200}"
        )
    else:
        assert isinstance(ours, type(sdk)), f"{path}: expected {type(sdk).__name__}, got {ours!r:.200}"


def _assert_named(ours: list[dict[str, Any]], sdk: list[dict[str, Any]], path: str) -> None:
    key = "name" if "name" in sdk[0] else "stage"
    by_name = {item[key]: item for item in ours}
    for sample in sdk:
        name = sample[key]
        if name not in by_name and name not in ("observation", "decision") and len(ours) == 2:
            continue  # no model call was made (e.g. the engine was down): only observation and decision
        assert name in by_name, f"{path}: no {key} {name!r} (have {sorted(by_name)})"
        assert_shape(by_name[name], sample, f"{path}[{key}={name}]")
