"""Tool shapes: one shape in, one call shape out, checked by a real JSON-schema validator.

The ground floor under both the settings (``arena_vllm.config``) and the backends: it imports
neither, so the settings check tool sets and ``tool_choice`` with the same rule the backend uses.

The seed passed flat tools (``{name, description, parameters}``); the OpenAI API wants
``{type: function, function: {...}}``. Both come in, OpenAI's goes out. A call is always
``{"name": str, "arguments": dict}``, whether the server returned it natively or the model
wrote it as text (the prompt path).

Example::

    from arena_vllm.tool_shapes import normalize_tools, parse_tool_call_from_text, validate_tool_call

    tools = normalize_tools([{"name": "idle", "parameters": {"type": "object", "properties": {}}}])
    call = parse_tool_call_from_text('<tool_call>{"name": "idle", "arguments": {}}</tool_call>')
    assert call == {"name": "idle", "arguments": {}}
    assert validate_tool_call(call["name"], call["arguments"], tools) is None
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from pydantic import BaseModel

#: A tool as callers may give it: flat or OpenAI-shaped dict, or a ``ToolSpec`` from the settings.
ToolLike = Mapping[str, Any] | BaseModel

#: The parameters of a tool that takes none.
EMPTY_PARAMETERS = {"type": "object", "properties": {}}
#: tool_choice values that name no tool. ``none`` is refused everywhere: these calls exist to get
#: an action (the game needs one every tick); plain text is what ``generate()`` is for.
CHOICES_WITHOUT_A_NAME = ("auto", "required")
_NAME_KEYS = ("name", "tool", "function")
_ARGUMENT_KEYS = ("arguments", "params", "parameters")
_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?(.*?)```", re.DOTALL)


def normalize_tools(tools: Sequence[ToolLike]) -> list[dict[str, Any]]:
    """OpenAI-shaped copies of ``tools`` (flat dicts, OpenAI dicts or ``ToolSpec`` models), each ``strict``;
    an empty description is left out (it would only cost prompt tokens).

    Raises ``ValueError`` naming the tool when one has no name, a bad schema or a repeated name,
    so a broken tool set fails before any request is sent.
    """
    if not tools:
        raise ValueError("tools must name at least one tool")
    normalized = []
    for tool in tools:
        function = unwrap_tool(tool)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"every tool needs a name; got {function!r}")
        parameters = function.get("parameters") or EMPTY_PARAMETERS
        problem = _schema_problem(json.dumps(parameters, sort_keys=True))
        if problem:
            raise ValueError(f"tool {name!r} has an invalid parameters schema: {problem}")
        if parameters.get("type") != "object":
            raise ValueError(f"tool {name!r}: parameters must be a JSON schema of type 'object' (a call's arguments)")
        described = {"description": function["description"]} if function.get("description") else {}
        normalized.append(
            {
                "type": "function",
                "function": {"name": name, **described, "parameters": parameters, "strict": True},
            }
        )
    names = tool_names(normalized)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"tool names must be unique; repeated: {repeated}")
    return normalized


def check_tool_choice(choice: str, names: Sequence[str] | None = None) -> str:
    """``choice`` if it asks for a tool call: auto, required, or (when ``names`` are given) one of them.

    The one rule for the settings, :class:`VLLMBackendConfig` and each request. ``none`` is
    refused, not passed on: it would make every tool request come back without a call.
    """
    if choice == "none":
        raise ValueError(
            "tool_choice 'none' asks for no tool call; use auto, required or a tool name "
            "(generate() is the call for plain text)"
        )
    if not choice:
        raise ValueError("tool_choice must be auto, required or a tool name, not empty")
    if names is not None and choice not in CHOICES_WITHOUT_A_NAME and choice not in names:
        raise ValueError(f"tool_choice {choice!r} is neither auto, required nor one of {sorted(names)}")
    return choice


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of normalized tools, in order."""
    return [tool["function"]["name"] for tool in tools]


def validate_tool_call(name: str, arguments: Any, tools: Sequence[ToolLike]) -> str | None:
    """Why the call does not fit ``tools`` (unknown name, arguments not an object, schema violation), or None."""
    functions = [unwrap_tool(tool) for tool in tools]
    schemas = {function.get("name"): function.get("parameters") or EMPTY_PARAMETERS for function in functions}
    if name not in schemas:
        return f"unknown tool {name!r}; expected one of {sorted(schemas)}"
    if not isinstance(arguments, dict):
        return f"arguments for {name!r} must be a JSON object, got {type(arguments).__name__}"
    error = best_match(_validator(json.dumps(schemas[name], sort_keys=True)).iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "<arguments>"
    return f"arguments for {name!r} violate its schema at {where}: {error.message}"


def parse_tool_call_from_text(text: str) -> dict[str, Any] | None:
    """The first JSON tool call written in ``text``, as ``{"name", "arguments"}``, or None.

    Looks in ``<tool_call>`` tags, then code fences, then the bare text (the forms small
    models use), and tolerates ``tool``/``function`` for the name and ``params``/``parameters``
    for the arguments. Arguments encoded as a JSON string are decoded.
    """
    regions = [*_TAGGED.findall(text), *_FENCED.findall(text), text]
    for region in regions:
        for candidate in _json_objects(region):
            call = _as_call(candidate)
            if call is not None:
                return call
    return None


def tool_prompt(tools: Sequence[Mapping[str, Any]]) -> str:
    """System-prompt text for the prompt path: the tools, and the Hermes-style answer format."""
    described = "\n".join(
        json.dumps(
            {key: tool["function"][key] for key in ("name", "description", "parameters") if key in tool["function"]}
        )
        for tool in tools
    )
    return (
        "You can call these tools (JSON schemas):\n"
        f"{described}\n"
        "Call exactly one of them. Answer with the call only, in this form:\n"
        '<tool_call>\n{"name": "<tool name>", "arguments": {<arguments matching its schema>}}\n</tool_call>'
    )


def tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """Normalized tools as a few short lines for a system prompt, for a model whose chat template drops ``tools``.

    One line a tool, ``name(arg: "a" | "b", other: integer[3])``; constrained decoding still
    forces the call's form, so the text only has to say what each tool and choice is.
    """
    lines = []
    for tool in tools:
        function = tool["function"]
        properties = function.get("parameters", {}).get("properties", {})
        arguments = ", ".join(f"{name}: {_schema_words(schema)}" for name, schema in properties.items())
        described = f" - {function['description']}" if function.get("description") else ""
        lines.append(f"{function['name']}({arguments}){described}")
    return "Tools (call exactly one):\n" + "\n".join(lines)


def _schema_words(schema: Mapping[str, Any]) -> str:
    """A parameter's schema in a few words: its choices, else its type (arrays with their length)."""
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if schema.get("type") == "array":
        count = schema.get("minItems") if schema.get("minItems") == schema.get("maxItems") else None
        return f"{_schema_words(schema.get('items', {}))}[{count or ''}]"
    return str(schema.get("type", "any"))


def one_call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A JSON schema whose instances are exactly the valid calls of (normalized) ``tools``, one object each:
    ``{"<tool name>": {<arguments>}}``, one branch per tool (the shortest form: SmolLM2 writes
    ``{"move_to":{"target":"Apple2"}}`` in 14 tokens, where Hermes' ``<tool_call>`` envelope alone is 33)."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {tool["function"]["name"]: tool["function"].get("parameters") or EMPTY_PARAMETERS},
                "required": [tool["function"]["name"]],
                "additionalProperties": False,
            }
            for tool in tools
        ]
    }


@functools.lru_cache(maxsize=256)
def _schema_problem(encoded_schema: str) -> str | None:
    """Why a JSON schema is invalid, or None; cached because checking costs ~2 ms and every call sends tools."""
    try:
        Draft202012Validator.check_schema(json.loads(encoded_schema))
    except SchemaError as exc:
        return exc.message
    return None


@functools.lru_cache(maxsize=256)
def _validator(encoded_schema: str) -> Draft202012Validator:
    """One validator per schema, built once: every decision checks its call against the same few tools."""
    return Draft202012Validator(json.loads(encoded_schema))


def unwrap_tool(tool: ToolLike) -> dict[str, Any]:
    """The ``{name, description, parameters}`` part of a flat tool, an OpenAI tool or a ``ToolSpec``."""
    raw = tool.model_dump() if isinstance(tool, BaseModel) else dict(tool)
    return dict(raw["function"]) if raw.get("type") == "function" and "function" in raw else raw


def _json_objects(text: str) -> Iterator[Any]:
    """Every JSON object that starts somewhere in ``text``, leftmost first."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        yield value


def _as_call(value: Any) -> dict[str, Any] | None:
    """``{"name", "arguments"}`` from one decoded object, if it names a tool."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # OpenAI's {"type": "function", "function": {...}}
        value = value["function"]
    name = next((value[key] for key in _NAME_KEYS if isinstance(value.get(key), str)), None)
    if not name:
        return None
    arguments = next((value[key] for key in _ARGUMENT_KEYS if key in value), {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass  # left as text: validate_tool_call reports "must be a JSON object"
    return {"name": name, "arguments": arguments}
