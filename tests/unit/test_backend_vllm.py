"""VLLMBackend against a real loopback server (FaultServer): requests sent, results read, fallbacks taken.

Tool-call tests run twice, through ``generate_with_tools`` and ``agenerate_with_tools``, since both
must behave the same.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from arena_vllm.agent.actions import tools_for
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import (
    GenerationResult,
    LLMBackend,
    ModelNotServedError,
    ServerError,
    VLLMBackend,
    VLLMBackendConfig,
)
from arena_vllm.config import load_settings
from tests.support.fault_server import TEXT_ANSWER, FaultServer

#: The agent's tools for one observation (flat, bounded): move_to, collect (enum ["berry_1"]), idle.
TOOLS = tools_for(
    Observation.model_validate(
        {"agent_id": "a", "position": [0, 0, 0], "nearby_resources": [{"name": "berry_1", "position": [1, 0, 1]}]}
    ),
    load_settings(["scene.tools=[move_to,collect,idle]", "scene.move_targets=coordinates"]),
)
MOVE = {"target_position": [1.0, 2.0, 3.0]}
FLAT_MOVE_TO = {"name": "move_to", "description": "Move.", "parameters": TOOLS[0]["parameters"]}
OPENAI_MOVE_TO = {"type": "function", "function": FLAT_MOVE_TO}


def written(name: str, arguments: dict) -> str:
    """A call as a Hermes-style model writes it in text."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(model="tiny") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_server(server: FaultServer) -> None:
    server.mode, server.tool_args, server.text, server.model = "tool_call", MOVE, TEXT_ANSWER, "tiny"
    server.requests.clear()
    server.authorizations.clear()
    server.client_ports.clear()


def make_backend(server: FaultServer, **options: Any) -> VLLMBackend:
    return VLLMBackend(
        VLLMBackendConfig(
            **{
                "model_path": "tiny",
                "api_base": server.api_base,
                "timeout_s": 5,
                "max_retries": 0,
                "function_calling_format": "openai",
                **options,
            }
        )
    )


@pytest.fixture
async def backend(server: FaultServer) -> AsyncIterator[VLLMBackend]:
    async with make_backend(server) as created:
        yield created


ToolCaller = Callable[..., Awaitable[GenerationResult]]


@pytest.fixture(params=["sync", "async"])
def with_tools(request: pytest.FixtureRequest, backend: VLLMBackend) -> ToolCaller:
    """``generate_with_tools`` or ``agenerate_with_tools`` of ``backend``, both awaited the same way."""
    if request.param == "async":
        return backend.agenerate_with_tools

    async def call(*args: Any, **kwargs: Any) -> GenerationResult:
        return backend.generate_with_tools(*args, **kwargs)

    return call


def test_backend_satisfies_the_protocol(backend: VLLMBackend) -> None:
    assert isinstance(backend, LLMBackend)


async def test_an_idle_connection_is_dropped_before_the_server_closes_it(
    with_tools: ToolCaller, server: FaultServer
) -> None:
    """vLLM's uvicorn (and this server's) closes a connection idle for 5 s; a client that keeps it as long sends its next
    request into the close ("Server disconnected"). The backend reuses a connection idle for 0.5 s, not one idle 4.5 s."""
    for pause in (0.0, 0.5, 4.5):
        await asyncio.sleep(pause)
        await with_tools("go", TOOLS, tool_choice="required")
    first, reused, after_idle = server.client_ports
    assert first == reused, "a busy connection should be reused"
    assert after_idle != reused, "a connection idle for 4.5 s was reused: the server closes it at 5 s"


# -- text ----------------------------------------------------------------------------------------


def test_generate_returns_text_tokens_and_latency(backend: VLLMBackend, server: FaultServer) -> None:
    result = backend.generate("Where are the berries?", system_prompt="Be brief.")
    assert result.text == TEXT_ANSWER and result.finish_reason == "stop"
    meta = result.metadata
    assert meta["model"] == "tiny" and meta["completion_tokens"] == len(TEXT_ANSWER.split())
    assert result.tokens_used == meta["prompt_tokens"] + meta["completion_tokens"] > 0
    assert meta["latency_s"] > 0
    (body,) = server.requests
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where are the berries?"},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 256)
    assert "tools" not in body


def test_generate_overrides_temperature_and_max_tokens_per_call(backend: VLLMBackend, server: FaultServer) -> None:
    backend.generate("hi", temperature=0.0, max_tokens=8)
    assert (server.requests[0]["temperature"], server.requests[0]["max_tokens"]) == (0.0, 8)


async def test_agenerate_matches_generate(backend: VLLMBackend) -> None:
    result = await backend.agenerate("hi")
    assert result.text == TEXT_ANSWER and result.metadata["model"] == "tiny"


async def test_empty_model_path_uses_the_served_model_and_caches_it(server: FaultServer) -> None:
    async with make_backend(server, model_path="") as backend:
        assert backend.generate("hi").metadata["model"] == "tiny"
        server.model = "renamed"  # asked once: the cached name is now stale, and says so
        with pytest.raises(ModelNotServedError):
            await backend.agenerate("hi")
    assert [body["model"] for body in server.requests] == ["tiny", "tiny"]


def test_stream_yields_the_text_in_chunks(backend: VLLMBackend) -> None:
    chunks = list(backend.stream("hi"))
    assert len(chunks) > 1 and "".join(chunks) == TEXT_ANSWER


async def test_astream_yields_the_text_in_chunks(backend: VLLMBackend) -> None:
    chunks = [chunk async for chunk in backend.astream("hi")]
    assert len(chunks) > 1 and "".join(chunks) == TEXT_ANSWER


# -- native tool calls ---------------------------------------------------------------------------


async def test_native_call_is_valid_and_request_is_strict(with_tools: ToolCaller, server: FaultServer) -> None:
    result = await with_tools("Go to the tree.", TOOLS, tool_choice="required")
    assert result.metadata["tool_call"] == {"name": "move_to", "arguments": MOVE}
    assert result.metadata["tool_call_source"] == "native"
    assert "tool_call_error" not in result.metadata and "prompt_reason" not in result.metadata
    (body,) = server.requests
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert [tool["function"]["name"] for tool in body["tools"]] == ["move_to", "collect", "idle"]
    assert all(tool["type"] == "function" and tool["function"]["strict"] is True for tool in body["tools"])


async def test_tool_calls_carry_the_api_key(server: FaultServer) -> None:
    """Chat requests go through the SDK's generic ``post`` (issue 14): its auth must still apply, sync and async."""
    async with make_backend(server, api_key="sk-arena-test") as keyed:
        keyed.generate_with_tools("Go.", TOOLS)
        await keyed.agenerate_with_tools("Go.", TOOLS)
    assert server.authorizations == ["Bearer sk-arena-test"] * 2


@pytest.mark.parametrize("tool", [FLAT_MOVE_TO, OPENAI_MOVE_TO], ids=["flat", "openai"])
async def test_both_tool_shapes_send_the_same_request(with_tools: ToolCaller, server: FaultServer, tool: dict) -> None:
    result = await with_tools("Go.", [tool])
    assert result.metadata["tool_call"]["name"] == "move_to"
    assert server.requests[0]["tools"] == [{"type": "function", "function": {**FLAT_MOVE_TO, "strict": True}}]


async def test_named_tool_choice_is_sent_as_a_named_function(with_tools: ToolCaller, server: FaultServer) -> None:
    server.tool_args = {"target_name": "berry_1"}
    result = await with_tools("Collect it.", TOOLS, tool_choice="collect")
    assert result.metadata["tool_call"] == {"name": "collect", "arguments": {"target_name": "berry_1"}}
    assert server.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "collect"}}


async def test_tool_choice_defaults_to_the_config(server: FaultServer) -> None:
    async with make_backend(server, tool_choice="required") as backend:
        backend.generate_with_tools("Go.", TOOLS)
    assert server.requests[0]["tool_choice"] == "required"


async def test_malformed_arguments_are_reported_not_raised(with_tools: ToolCaller, server: FaultServer) -> None:
    server.mode = "malformed_args"
    meta = (await with_tools("Go.", TOOLS, tool_choice="required")).metadata
    assert "tool_call" not in meta and meta["tool_call_source"] == "native"
    assert "'move_to' call are not JSON" in meta["tool_call_error"]


async def test_schema_violations_are_reported_not_raised(with_tools: ToolCaller, server: FaultServer) -> None:
    server.mode = "invalid_args"
    meta = (await with_tools("Go.", TOOLS, tool_choice="required")).metadata
    assert "tool_call" not in meta and meta["tool_call_source"] == "native"
    assert meta["tool_call_error"].startswith("arguments for 'move_to' violate its schema")


async def test_out_of_bounds_arguments_are_caught_by_the_schema(with_tools: ToolCaller, server: FaultServer) -> None:
    server.tool_args = {"target_position": [0, 0, 1000]}
    meta = (await with_tools("Go.", TOOLS, tool_choice="required")).metadata
    assert "greater than the maximum of 100" in meta["tool_call_error"]


# -- fallback: the model wrote text ----------------------------------------------------------------


async def test_call_written_in_text_is_parsed_without_a_second_request(
    with_tools: ToolCaller, server: FaultServer
) -> None:
    server.mode = "text_call"
    meta = (await with_tools("Go.", TOOLS, tool_choice="required")).metadata
    assert meta["tool_call"] == {"name": "move_to", "arguments": MOVE}
    assert meta["tool_call_source"] == "prompt" and meta["prompt_reason"] == "the model wrote the call as text"
    assert len(server.requests) == 1


async def test_plain_text_answer_triggers_a_prompt_based_request(with_tools: ToolCaller, server: FaultServer) -> None:
    server.mode = "text"
    result = await with_tools("Go.", TOOLS, tool_choice="auto")
    meta = result.metadata
    assert meta["tool_call_source"] == "prompt"
    assert meta["prompt_reason"] == "the model answered in text without a tool call"
    assert meta["tool_call_error"] == f"no tool call in the model's answer: {TEXT_ANSWER!r}"
    native, prompted = server.requests
    assert "tools" in native and "tools" not in prompted
    system = prompted["messages"][0]["content"]
    assert "<tool_call>" in system and '"name": "collect"' in system
    assert result.tokens_used == meta["prompt_tokens"] + meta["completion_tokens"]
    assert meta["completion_tokens"] == 2 * len(TEXT_ANSWER.split())  # both requests are counted


# -- the prompt path: the server rejects tools ------------------------------------------------------------


async def test_rejected_tools_switch_to_the_prompt_path_for_good(with_tools: ToolCaller, server: FaultServer) -> None:
    server.mode, server.text = "reject_tools", written("move_to", MOVE)
    first = (await with_tools("Go.", TOOLS, tool_choice="required", system_prompt="You forage.")).metadata
    assert first["tool_call"] == {"name": "move_to", "arguments": MOVE}
    assert first["tool_call_source"] == "prompt"
    assert first["prompt_reason"].startswith("server rejected tools:")
    assert "--enable-auto-tool-choice" in first["prompt_reason"]
    rejected, prompted = server.requests
    assert "tools" in rejected and "tools" not in prompted
    assert prompted["messages"][0]["content"].startswith("You forage.\n\nYou can call these tools")

    second = (await with_tools("Go.", TOOLS, tool_choice="required")).metadata
    assert second["prompt_reason"].startswith("server rejected tools earlier:")
    assert len(server.requests) == 3 and "tools" not in server.requests[2]  # straight to the prompt path


async def test_the_prompt_path_reports_invalid_calls_in_the_same_shape(
    with_tools: ToolCaller, server: FaultServer
) -> None:
    server.mode, server.text = "reject_tools", written("move_to", {"target_position": "north"})
    meta = (await with_tools("Go.", TOOLS, tool_choice="required")).metadata
    assert "tool_call" not in meta and meta["tool_call_source"] == "prompt"
    assert "violate its schema at target_position: 'north' is not of type 'array'" in meta["tool_call_error"]


async def test_the_prompt_path_with_named_choice_offers_and_accepts_only_that_tool(
    with_tools: ToolCaller, server: FaultServer
) -> None:
    server.mode, server.text = "reject_tools", written("move_to", MOVE)
    meta = (await with_tools("Collect it.", TOOLS, tool_choice="collect")).metadata
    assert meta["tool_call_error"] == "unknown tool 'move_to'; expected one of ['collect']"
    system = server.requests[-1]["messages"][0]["content"]
    assert '"name": "collect"' in system and '"name": "move_to"' not in system


async def test_prompt_format_never_sends_tools(server: FaultServer) -> None:
    server.text = written("idle", {})
    async with make_backend(server, function_calling_format="prompt") as backend:
        meta = (await backend.agenerate_with_tools("Wait.", TOOLS)).metadata
    assert meta["tool_call"] == {"name": "idle", "arguments": {}}
    assert meta["prompt_reason"] == "function_calling_format is 'prompt'"
    assert ["tools" in body for body in server.requests] == [False]


# -- what is not a tool-call problem ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_choice", "message"),
    [
        ("jump", "tool_choice 'jump' is neither auto, required nor one of ['collect', 'idle', 'move_to']"),
        ("none", "tool_choice 'none' asks for no tool call"),
    ],
    ids=["unknown-tool", "none"],
)
async def test_bad_tool_choice_fails_before_any_request(
    with_tools: ToolCaller, server: FaultServer, tool_choice: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        await with_tools("Go.", TOOLS, tool_choice=tool_choice)
    assert server.requests == []


async def test_server_errors_raise_instead_of_falling_back(with_tools: ToolCaller, server: FaultServer) -> None:
    server.mode = "error_500"
    with pytest.raises(ServerError):
        await with_tools("Go.", TOOLS, tool_choice="required")
    assert len(server.requests) == 1


async def test_unserved_model_raises_instead_of_falling_back(server: FaultServer) -> None:
    async with make_backend(server, model_path="llama") as backend:
        with pytest.raises(ModelNotServedError, match="The model `llama` does not exist"):
            await backend.agenerate_with_tools("Go.", TOOLS)
    assert len(server.requests) == 1
