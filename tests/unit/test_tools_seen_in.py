"""Tools the model can see: a chat template that drops ``tools`` gets them written into the system prompt."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from arena_vllm.backends import VLLMBackend, VLLMBackendConfig
from tests.support.fault_server import FaultServer

MOVE_TO = {
    "name": "move_to",
    "description": "",
    "parameters": {
        "type": "object",
        "properties": {"target": {"enum": ["Apple2", "away from Fire"]}},
        "required": ["target"],
        "additionalProperties": False,
    },
}
IDLE = {"name": "idle", "parameters": {"type": "object", "additionalProperties": False}}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", tool_args={"target": "Apple2"}) as running:
        yield running


def _call(
    server: FaultServer, backend: VLLMBackend | None = None, call_format: str = "openai"
) -> tuple[VLLMBackend, dict]:
    backend = backend or VLLMBackend(
        VLLMBackendConfig(
            model_path="tiny", api_base=server.api_base, max_retries=0, function_calling_format=call_format
        )
    )
    result = backend.generate_with_tools(
        "Tick 1.", [MOVE_TO, IDLE], system_prompt="Foraging game.", tool_choice="required"
    )
    assert result.metadata["tool_call"] == {"name": "move_to", "arguments": {"target": "Apple2"}}
    assert result.metadata["tools_seen_in"] == backend.status().tools_seen_in  # every format's results say it
    return backend, server.requests[-1]


def test_a_template_that_drops_tools_gets_them_in_the_system_prompt(server: FaultServer) -> None:
    server.template_renders_tools = False
    backend, request = _call(server)
    system = request["messages"][0]["content"]
    assert system == 'Foraging game.\n\nTools (call exactly one):\nmove_to(target: "Apple2" | "away from Fire")\nidle()'
    assert request["tools"] and request["tool_choice"] == "required"  # still forced and constrained
    assert backend.status().tools_seen_in == "system_prompt"


def test_the_schema_format_always_writes_them_there_and_asks_for_one_json_call(server: FaultServer) -> None:
    server.template_renders_tools = True  # not asked: a schema request carries no tools field
    backend, request = _call(server, call_format="schema")
    system = request["messages"][0]["content"]
    assert system.startswith("Foraging game.\n\nTools (call exactly one):\nmove_to(target: ")
    assert system.endswith('for example {"move_to":{"target":"Apple2"}}') and "tools" not in request
    shapes = request["response_format"]["json_schema"]["schema"]["anyOf"]  # constrained from the first token
    assert [shape["required"] for shape in shapes] == [["move_to"], ["idle"]]
    assert shapes[0]["properties"]["move_to"] == MOVE_TO["parameters"]
    assert backend.status().tools_seen_in == "system_prompt"


def test_a_template_that_renders_tools_keeps_the_system_prompt(server: FaultServer) -> None:
    server.template_renders_tools = True
    backend, request = _call(server)
    assert request["messages"][0]["content"] == "Foraging game."
    assert backend.status().tools_seen_in == "template"


def test_a_server_without_tokenize_is_asked_once_and_left_as_it_is(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="arena_vllm.backends.vllm"):
        backend, request = _call(server)
        _call(server, backend)
    assert request["messages"][0]["content"] == "Foraging game."
    assert backend.status().tools_seen_in == "unknown"
    assert sum("renders tools" in record.message for record in caplog.records) == 1
