"""Tool shapes, calls written as text, and schema validation (no server needed)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from arena_vllm.agent.actions import tools_for
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import VLLMBackendConfig, normalize_tools, parse_tool_call_from_text, validate_tool_call
from arena_vllm.backends.chat import tools_for_choice
from arena_vllm.config import ConfigError, ToolSetSettings, load_settings

MOVE_TO_FLAT = {
    "name": "move_to",
    "description": "Move toward a position.",
    "parameters": {
        "type": "object",
        "properties": {"target_position": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}},
        "required": ["target_position"],
        "additionalProperties": False,
    },
}
MOVE_TO_OPENAI = {"type": "function", "function": MOVE_TO_FLAT}


@pytest.mark.parametrize("tool", [MOVE_TO_FLAT, MOVE_TO_OPENAI], ids=["flat", "openai"])
def test_normalize_accepts_flat_and_openai_shapes(tool: dict) -> None:
    (normalized,) = normalize_tools([tool])
    assert normalized == {"type": "function", "function": {**MOVE_TO_FLAT, "strict": True}}


def test_normalize_accepts_tool_specs_from_settings() -> None:
    normalized = normalize_tools(load_settings().tools.tools)
    # the SDK's five first; a new tool (its YAML plus one registry entry) comes after them
    assert [tool["function"]["name"] for tool in normalized][:5] == [
        "move_to",
        "collect",
        "craft_item",
        "explore",
        "idle",
    ]
    assert all(tool["function"]["strict"] for tool in normalized)


def test_normalize_gives_parameterless_tools_an_empty_object_schema() -> None:
    (normalized,) = normalize_tools([{"name": "idle"}])
    assert normalized["function"]["parameters"] == {"type": "object", "properties": {}}


def test_normalize_does_not_change_its_input() -> None:
    tool = {"type": "function", "function": dict(MOVE_TO_FLAT)}
    normalize_tools([tool])
    assert "strict" not in tool["function"]


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ([], "at least one tool"),
        ([{"description": "no name"}], "needs a name"),
        ([{"name": "bad", "parameters": {"type": "objekt"}}], "'bad' has an invalid parameters schema"),
        ([MOVE_TO_FLAT, MOVE_TO_OPENAI], "repeated: ['move_to']"),
    ],
    ids=["empty", "no-name", "bad-schema", "duplicate"],
)
def test_normalize_rejects_broken_tool_sets(tools: list, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalize_tools(tools)


CALL = {"name": "move_to", "arguments": {"target_position": [1, 2, 3]}}


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "move_to", "arguments": {"target_position": [1, 2, 3]}}\n</tool_call>',
        '<tool_call>{"name": "move_to", "arguments": {"target_position": [1, 2, 3]}}',  # unclosed tag
        'Sure!\n```json\n{"name": "move_to", "arguments": {"target_position": [1, 2, 3]}}\n```',
        '```\n{"name": "move_to", "arguments": {"target_position": [1, 2, 3]}}\n```',
        'I will move. {"name": "move_to", "arguments": {"target_position": [1, 2, 3]}} Done.',
        '{"tool": "move_to", "params": {"target_position": [1, 2, 3]}}',
        '{"name": "move_to", "parameters": {"target_position": [1, 2, 3]}}',
        '{"name": "move_to", "arguments": "{\\"target_position\\": [1, 2, 3]}"}',  # arguments double-encoded
        '{"type": "function", "function": {"name": "move_to", "arguments": {"target_position": [1, 2, 3]}}}',
    ],
    ids=[
        "tags",
        "unclosed-tag",
        "json-fence",
        "bare-fence",
        "bare-json",
        "tool-params",
        "parameters",
        "string-arguments",
        "openai-shape",
    ],
)
def test_parse_finds_the_call_in_every_written_form(text: str) -> None:
    assert parse_tool_call_from_text(text) == CALL


def test_parse_prefers_the_tagged_call_over_earlier_json() -> None:
    text = (
        'Example: {"name": "idle", "arguments": {}}\n<tool_call>{"name": "move_to", "arguments": '
        '{"target_position": [1, 2, 3]}}</tool_call>'
    )
    assert parse_tool_call_from_text(text) == CALL


def test_parse_defaults_missing_arguments_to_an_empty_object() -> None:
    assert parse_tool_call_from_text('{"name": "idle"}') == {"name": "idle", "arguments": {}}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I would walk north.",
        '{"target_position": [1, 2, 3]}',
        '<tool_call>{"name": "move_to", </tool_call>',
        "[1, 2, 3]",
    ],
    ids=["empty", "prose", "no-name", "truncated", "not-an-object"],
)
def test_parse_returns_none_without_a_call(text: str) -> None:
    assert parse_tool_call_from_text(text) is None


@pytest.mark.parametrize("tools", [[MOVE_TO_FLAT], [MOVE_TO_OPENAI]], ids=["flat", "openai"])
def test_validate_accepts_a_call_that_fits_the_schema(tools: list) -> None:
    assert validate_tool_call("move_to", {"target_position": [1, 2, 3]}, tools) is None


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("jump", {}, "unknown tool 'jump'; expected one of ['move_to']"),
        ("move_to", [1, 2, 3], "must be a JSON object, got list"),
        ("move_to", {}, "'target_position' is a required property"),
        ("move_to", {"target_position": [1, 2]}, "at target_position: [1, 2] is too short"),
        ("move_to", {"target_position": [1, 2, "x"]}, "at target_position/2: 'x' is not of type 'number'"),
        ("move_to", {"target_position": [1, 2, 3], "fly": True}, "Additional properties are not allowed"),
    ],
    ids=["unknown-tool", "not-an-object", "missing-required", "too-short", "wrong-type", "extra-property"],
)
def test_validate_says_why_a_call_does_not_fit(name: str, arguments: object, message: str) -> None:
    error = validate_tool_call(name, arguments, [MOVE_TO_FLAT])
    assert error is not None and message in error


def test_validate_checks_bounds_and_enums_of_an_agents_tools() -> None:
    observation = Observation.model_validate(
        {  # within collect range, at a workbench with two berries
            "agent_id": "a",
            "position": [0, 0, 0],
            "nearby_resources": [{"name": "Apple2", "position": [1, 0.5, -1]}],
            "nearby_stations": [{"name": "Workbench", "type": "workbench", "position": [1, 0, 1]}],
            "custom": {"inventory": {"berry": 2}},
        }
    )
    tools = tools_for(observation, load_settings())
    assert validate_tool_call("collect", {"target_name": "Apple2"}, tools) is None
    assert "is not one of ['Apple2']" in validate_tool_call("collect", {"target_name": "apple2"}, tools)
    assert "is not one of ['meal']" in validate_tool_call("craft_item", {"recipe": "sword"}, tools)
    assert "is not one of ['Apple2', 'Workbench']" in validate_tool_call("move_to", {"target": "Atlantis"}, tools)


# -- one tool_choice rule, one tool-set check: the settings, the config class and each request agree --------


def _settings_reason(overrides: list[str]) -> str | None:
    try:
        load_settings(overrides)
    except ConfigError as exc:
        return str(exc)
    return None


def _config_reason(choice: str) -> str | None:
    try:
        VLLMBackendConfig(api_base="http://127.0.0.1:9/v1", tool_choice=choice)
    except ValidationError as exc:
        return str(exc)
    return None


def _request_reason(choice: str, tools: list[dict]) -> str | None:
    try:
        tools_for_choice(normalize_tools(tools), choice)
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    ("choice", "refused_by_all"),
    [
        ("none", True),
        ("required", False),
        ("auto", False),
        ("move_to", False),
    ],
)
def test_tool_choice_is_one_rule_everywhere(choice: str, refused_by_all: bool) -> None:
    reasons = [
        _settings_reason([f"backend.function_calling.tool_choice={choice}"]),
        _config_reason(choice),
        _request_reason(choice, [MOVE_TO_FLAT]),
    ]
    if refused_by_all:
        assert all(reason and "asks for no tool call" in reason for reason in reasons), reasons
    else:
        assert reasons == [None, None, None]


def test_an_unknown_tool_name_is_refused_where_the_tools_are_known() -> None:
    settings_reason = _settings_reason(["backend.function_calling.tool_choice=jump"])
    request_reason = _request_reason("jump", [MOVE_TO_FLAT])
    assert settings_reason and request_reason
    assert "tool_choice 'jump' is neither auto, required nor one of" in settings_reason
    assert "tool_choice 'jump' is neither auto, required nor one of ['move_to']" in request_reason


@pytest.mark.parametrize(
    ("tools", "says"),
    [
        ([{**MOVE_TO_FLAT, "parameters": {"type": "objekt"}}], "has an invalid parameters schema"),
        ([{**MOVE_TO_FLAT, "parameters": {"type": "string"}}], "parameters must be a JSON schema of type 'object'"),
        ([MOVE_TO_FLAT, MOVE_TO_FLAT], "tool names must be unique; repeated: ['move_to']"),
    ],
    ids=["bad-schema", "not-object", "repeated"],
)
def test_a_bad_tool_set_is_refused_by_the_settings_and_the_request_alike(tools: list[dict], says: str) -> None:
    with pytest.raises(ValidationError) as settings_error:
        ToolSetSettings.model_validate({"name": "scene", "tools": tools})
    with pytest.raises(ValueError) as request_error:
        normalize_tools(tools)
    assert says in str(settings_error.value) and says in str(request_error.value)
