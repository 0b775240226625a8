"""VLLMBackend against the real vLLM CPU server of the stack, serving the tiny random-weight model.

The model's text is gibberish, so these tests check shapes and counts for text, and validity
for forced tool calls (strict schemas make vLLM's structured output valid even from random
weights). The ``stack`` fixture (and marker) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from arena_vllm.agent.actions import tools_for
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import (
    BackendConnectionError,
    GenerationResult,
    VLLMBackend,
    VLLMBackendConfig,
    validate_tool_call,
)
from arena_vllm.config import load_settings
from tests.support.stack import Stack

SETTINGS = load_settings(["scene.tools=[move_to,collect,idle]", "scene.move_targets=coordinates"])
#: The agent's tools for an agent next to berry_1 (within collect range): bounded move_to, collect with enum
#: ["berry_1"], idle.
TOOLS = tools_for(
    Observation.model_validate(
        {
            "agent_id": "a",
            "position": [0, 0, 0],
            "nearby_resources": [{"name": "berry_1", "type": "berry", "position": [1, 0, 1]}],
        }
    ),
    SETTINGS,
)
#: The seed README's tool: flat, with a bounded target so constrained decoding terminates.
MOVE_TO = {
    "name": "move_to",
    "description": "Move to a target position",
    "parameters": {
        "type": "object",
        "properties": {
            "target_position": {
                "type": "array",
                "items": {"type": "number", "minimum": -100, "maximum": 100},
                "minItems": 3,
                "maxItems": 3,
            },
        },
        "required": ["target_position"],
        "additionalProperties": False,
    },
}


@pytest.fixture
async def backend(stack: Stack) -> AsyncIterator[VLLMBackend]:
    config = VLLMBackendConfig(
        model_path=stack.served_model,
        api_base=stack.vllm_api_base,
        timeout_s=120,
        api_key=stack.api_key,
        max_retries=0,
        temperature=SETTINGS.backend.temperature,
        max_tokens=SETTINGS.backend.max_tokens,
    )
    async with VLLMBackend(config) as created:
        yield created


def test_status_reports_the_served_model(backend: VLLMBackend, stack: Stack) -> None:
    status = backend.status()
    assert status.available, status.reason
    assert status.models == [stack.served_model]


def test_text_generation_returns_text_and_token_counts(backend: VLLMBackend, stack: Stack) -> None:
    result = backend.generate("Describe the arena.", system_prompt="You are terse.", max_tokens=16)
    assert result.text
    assert result.finish_reason in ("stop", "length")
    meta = result.metadata
    assert meta["model"] == stack.served_model and meta["latency_s"] > 0
    assert meta["prompt_tokens"] > 0 and 0 < meta["completion_tokens"] <= 16
    assert result.tokens_used == meta["prompt_tokens"] + meta["completion_tokens"]


async def test_astream_yields_text(backend: VLLMBackend) -> None:
    chunks = [chunk async for chunk in backend.astream("Describe the arena.", max_tokens=16)]
    assert chunks and "".join(chunks)


async def test_twenty_of_twenty_forced_tool_calls_are_schema_valid(backend: VLLMBackend) -> None:
    """Sent concurrently, as the agent does for a tick; ``required`` and each named tool in turn."""
    choices = ["required", "move_to", "collect", "idle"]
    prompt = "You are at [0, 0, 0]. A berry bush named berry_1 is at [1, 0, 1]. Act."
    results: list[GenerationResult] = await asyncio.gather(
        *(
            backend.agenerate_with_tools(
                prompt, TOOLS, system_prompt=SETTINGS.scene.system_prompt, tool_choice=choices[i % len(choices)]
            )
            for i in range(20)
        )
    )
    failures = [
        (i, r.metadata.get("tool_call_error"), r.text) for i, r in enumerate(results) if "tool_call" not in r.metadata
    ]
    assert failures == [], f"{20 - len(failures)}/20 valid; failures: {failures}"
    for i, result in enumerate(results):
        call = result.metadata["tool_call"]
        assert result.metadata["tool_call_source"] == "native"
        assert validate_tool_call(call["name"], call["arguments"], TOOLS) is None
        if choices[i % len(choices)] != "required":
            assert call["name"] == choices[i % len(choices)]


def test_wrong_model_name_is_unavailable_with_the_reason(stack: Stack) -> None:
    with VLLMBackend(
        VLLMBackendConfig(model_path="no-such-model", api_base=stack.vllm_api_base, api_key=stack.api_key)
    ) as backend:
        assert backend.is_available() is False
        assert backend.status().reason == (
            f"model 'no-such-model' not served by {stack.vllm_api_base}; served: ['{stack.served_model}']"
        )


def test_server_on_a_closed_port_raises_connection_error_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        api_base = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with VLLMBackend(VLLMBackendConfig(model_path="tiny", api_base=api_base)) as backend:  # default retries
        started = time.monotonic()
        with pytest.raises(BackendConnectionError) as caught:
            backend.generate("hello")
        assert time.monotonic() - started < 15  # not a speed target: no 600 s SDK default
        assert caught.value.api_base == api_base
        assert backend.is_available() is False


def test_seed_example(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example, unchanged, against the keyed stack: the key comes from $VLLM_API_KEY."""
    monkeypatch.setenv("VLLM_API_KEY", stack.api_key)
    config = VLLMBackendConfig(
        model_path=stack.served_model,
        api_base=stack.vllm_api_base,
        temperature=0.7,
        max_tokens=256,
    )
    backend = VLLMBackend(config)
    assert backend.is_available()

    result = backend.generate("What should I do next?")
    assert result.text and result.tokens_used == result.metadata["prompt_tokens"] + result.metadata["completion_tokens"]
    assert 0 < result.metadata["completion_tokens"] <= 256

    result = backend.generate_with_tools("Move to position (10, 0, 5)", [MOVE_TO])
    tool_call = result.metadata["tool_call"]
    assert tool_call["name"] == "move_to" and len(tool_call["arguments"]["target_position"]) == 3
    assert all(-100 <= v <= 100 for v in tool_call["arguments"]["target_position"]), tool_call
    assert result.metadata["tool_call_source"] == "native"
    backend.close()


def test_without_the_key_the_keyed_stack_refuses_with_a_clear_error(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the seed example: the key really is needed, and only the environment supplied it."""
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with VLLMBackend(VLLMBackendConfig(model_path=stack.served_model, api_base=stack.vllm_api_base)) as backend:
        assert backend.is_available() is False
        assert "401" in (backend.status().reason or ""), backend.status().reason
