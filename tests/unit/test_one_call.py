"""Format ``schema`` (issue 22): each decision is one engine-constrained JSON call, and nothing longer.

vLLM's schema for ``tool_choice=required`` allows any number of calls and free whitespace, so
random weights wrote ~145 tokens a decision and a third of the calls ran to ``max_tokens``.
The one-call schema admits exactly the valid calls of the offered tools, one object each:
``{"<tool>": {<arguments>}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletionMessage

from arena_vllm.agent.policy import plan_call
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import VLLMBackend, VLLMBackendConfig
from arena_vllm.backends.chat import schema_call
from arena_vllm.config import load_settings
from arena_vllm.tool_shapes import normalize_tools, one_call_schema
from ops.engine.threads import thread_env
from tests.support.fault_server import FaultServer
from tests.support.game_requests import foraging_ticks, longest_calls

MOVE = {"target": "Stone"}
SETTINGS = load_settings(["backend.max_tokens_from_tools=true"])
REPLAY = [Observation.model_validate(body) for bodies in foraging_ticks(ticks=2, agents=16) for body in bodies]


def test_the_one_call_schema_admits_each_offered_tools_longest_call_and_nothing_else() -> None:
    for observation in REPLAY[:24]:
        tools = plan_call(observation, SETTINGS).tools
        validator = Draft202012Validator(one_call_schema(normalize_tools(tools)))
        calls = longest_calls(tools)
        for name, arguments in calls.items():
            call = {name: arguments}
            assert validator.is_valid(call), call
            assert not validator.is_valid([call, call])  # more than one call
            assert not validator.is_valid({**call, "idle": {}})  # two tools in one answer
            assert not validator.is_valid({"fly": arguments})
        if "collect" in calls:
            assert not validator.is_valid({"collect": calls["move_to"]})  # arguments of another tool


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", tool_args=MOVE) as running:
        yield running


def schema_backend(server: FaultServer) -> VLLMBackend:
    return VLLMBackend(
        VLLMBackendConfig(
            model_path="tiny", api_base=server.api_base, timeout_s=5, max_retries=0, function_calling_format="schema"
        )
    )


def tools() -> list[dict[str, Any]]:
    return plan_call(REPLAY[0], SETTINGS).tools


def test_a_schema_call_is_one_json_answer_read_as_a_native_call(server: FaultServer) -> None:
    server.mode, server.requests[:] = "tool_call", []
    with schema_backend(server) as backend:
        result = backend.generate_with_tools("go", tools(), system_prompt="play", max_tokens=100)
    [sent] = server.requests
    assert "tools" not in sent and sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == one_call_schema(normalize_tools(tools()))
    system = sent["messages"][0]["content"]
    assert (
        system.startswith("play\n\nTools (call exactly one):\nmove_to(target: ") and 'for example {"move_to":' in system
    )
    assert result.metadata["tool_call"] == {"name": "move_to", "arguments": MOVE}
    assert result.metadata["tool_call_source"] == "native" and result.text == ""


@pytest.mark.parametrize("mode", ["malformed_args", "invalid_args"])
def test_a_cut_or_invalid_schema_answer_is_reported_without_a_second_request(server: FaultServer, mode: str) -> None:
    server.mode, server.requests[:] = mode, []
    with schema_backend(server) as backend:
        result = backend.generate_with_tools("go", tools(), max_tokens=100)
    assert len(server.requests) == 1 and "tool_call" not in result.metadata
    assert result.metadata["tool_call_source"] == "native" and result.metadata["tool_call_error"]


def test_the_default_backend_format_is_schema_with_calls_bounded_by_their_tools() -> None:
    backend = load_settings([]).backend
    assert backend.function_calling.format == "schema" and backend.max_tokens_from_tools


def test_gpu_servers_get_one_openmp_thread_unless_the_user_set_one_and_cpu_servers_are_left_alone() -> None:
    assert thread_env("gpu", {})["OMP_NUM_THREADS"] == "1"
    assert thread_env("gpu", {"OMP_NUM_THREADS": "8"})["OMP_NUM_THREADS"] == "8"
    assert "OMP_NUM_THREADS" not in thread_env("cpu", {"PATH": "/bin"})


def test_the_written_call_is_compact_json_the_parser_reads() -> None:
    message = ChatCompletionMessage(role="assistant", content=json.dumps({"move_to": MOVE}, separators=(",", ":")))
    assert schema_call(message) == ({"name": "move_to", "arguments": MOVE}, None)
    cut = ChatCompletionMessage(role="assistant", content='{"move_to":{"target":"St')
    assert schema_call(cut)[0] is None and "no complete call" in schema_call(cut)[1]
