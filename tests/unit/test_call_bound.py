"""max_tokens from the tool schemas: the longest valid call of a tool set fits the bound, and only just."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arena_vllm.backends.call_bound import (
    CALL_TOKEN_MARGIN,
    UnboundedCallError,
    max_call_bytes,
    max_call_tokens,
)
from arena_vllm.tool_shapes import validate_tool_call

NAME_PATTERN = "^[a-z0-9_]{1,32}$"
MOVE_TO = {
    "name": "move_to",
    "parameters": {
        "type": "object",
        "properties": {
            "target_position": {
                "type": "array",
                "minItems": 3,
                "maxItems": 3,
                "items": {"type": "integer", "minimum": -100, "maximum": 100},
            },
            # 0.25, not 0.1: jsonschema checks multipleOf in binary floats (0.3 / 0.1 is not whole there)
            "speed": {"type": "number", "minimum": 0.25, "maximum": 2.0, "multipleOf": 0.25},
        },
        "required": ["target_position"],
        "additionalProperties": False,
    },
}
COLLECT = {
    "name": "collect",
    "parameters": {
        "type": "object",
        "properties": {"target_name": {"type": "string", "pattern": NAME_PATTERN}},
        "required": ["target_name"],
        "additionalProperties": False,
    },
}
SAY = {
    "name": "say",
    "parameters": {
        "type": "object",
        "properties": {
            "mood": {"enum": ["calm", "alarmed"]},
            "loud": {"type": "boolean"},
            "text": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]},
        },
        "additionalProperties": False,
    },
}
IDLE = {"name": "idle", "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}
TOOLS = [MOVE_TO, COLLECT, SAY, IDLE]

#: The longest valid call of each tool, made by hand (a random-weight model fills every bound like this).
LONGEST = {
    "move_to": {"target_position": [-100, -100, -100], "speed": 0.25},  # as long as any multiple of 0.25
    "collect": {"target_name": "a" * 32 + "\n"},  # Python's "$" (jsonschema) admits a final newline
    "say": {"mood": "alarmed", "loud": False, "text": "\U0001f600" * 4},  # each escaped as a surrogate pair
    "idle": {},
}


def written(name: str, arguments: dict[str, Any]) -> bytes:
    """The call as a Hermes-style model writes it (the form the bound counts: longer than a forced call's)."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>".encode()


@pytest.mark.parametrize("name", list(LONGEST))
def test_each_tools_longest_valid_call_fits(name: str) -> None:
    assert validate_tool_call(name, LONGEST[name], TOOLS) is None
    assert len(written(name, LONGEST[name])) <= max_call_bytes(TOOLS)


def test_the_bound_is_the_longest_call_not_more() -> None:
    """Tight: one byte less and the longest call would be cut (finish_reason=length, no valid call)."""
    longest = max(len(written(name, arguments)) for name, arguments in LONGEST.items())
    assert max_call_bytes(TOOLS) == longest
    assert max_call_tokens(TOOLS) == longest + CALL_TOKEN_MARGIN
    assert max_call_bytes([IDLE]) == len(written("idle", {}))


@given(
    position=st.lists(st.integers(-100, 100), min_size=3, max_size=3),
    speed=st.integers(1, 8).map(lambda quarters: quarters * 0.25),
    name=st.from_regex(NAME_PATTERN, fullmatch=True),
)
def test_random_valid_calls_fit(position: list[int], speed: float, name: str) -> None:
    bound = max_call_bytes(TOOLS)
    for tool, arguments in (
        ("move_to", {"target_position": position, "speed": speed}),
        ("collect", {"target_name": name}),
    ):
        assert validate_tool_call(tool, arguments, TOOLS) is None
        assert len(written(tool, arguments)) <= bound


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "number", "minimum": -100, "maximum": 100}, "multipleOf"),
        ({"type": "integer", "minimum": 0}, "minimum and a maximum"),
        ({"type": "string"}, "maxLength"),
        ({"type": "string", "pattern": "[a-z]{1,8}"}, "anchored"),
        ({"type": "string", "pattern": "^[a-z]+$"}, "anchored pattern of bounded width"),
        ({"type": "array", "items": {"type": "boolean"}}, "maxItems"),
        ({"type": "object", "properties": {}}, "additionalProperties"),
        ({}, "any value"),
    ],
)
def test_unbounded_schemas_are_refused_naming_the_property(schema: dict, named: str) -> None:
    tool = {"name": "t", "parameters": {"type": "object", "properties": {"p": schema}, "additionalProperties": False}}
    with pytest.raises(UnboundedCallError, match=named) as caught:
        max_call_tokens([tool])
    assert "tool 't'" in str(caught.value) and "arguments/p" in str(caught.value)
