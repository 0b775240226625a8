"""Tool definitions: one shape in, one call shape out, checked by a real JSON-schema validator.

The seed passed flat tools (``{name, description, parameters}``); the OpenAI API wants
``{type: function, function: {...}}``. Both come in, OpenAI's goes out. A call is always
``{"name": str, "arguments": dict}``, whether the server returned it natively or the model
wrote it as text (the prompt-based fallback).

Example::

    from arena_vllm.backends.tools import normalize_tools, parse_tool_call_from_text, validate_tool_call

    tools = normalize_tools([{"name": "idle", "parameters": {"type": "object", "properties": {}}}])
    call = parse_tool_call_from_text('<tool_call>{"name": "idle", "arguments": {}}</tool_call>')
    assert call == {"name": "idle", "arguments": {}}
    assert validate_tool_call(call["name"], call["arguments"], tools) is None
"""

from __future__ import annotations

import functools
import json
import math
import re
import re._parser as regex_parser  # the stdlib's regex parser: sizes a pattern without matching anything
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from pydantic import BaseModel

#: A tool as callers may give it: flat or OpenAI-shaped dict, or a ``ToolSpec`` from the settings.
ToolLike = Mapping[str, Any] | BaseModel

_EMPTY_PARAMETERS = {"type": "object", "properties": {}}
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
        function = _unwrap(tool)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"every tool needs a name; got {function!r}")
        parameters = function.get("parameters") or _EMPTY_PARAMETERS
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
    functions = [_unwrap(tool) for tool in tools]
    schemas = {function.get("name"): function.get("parameters") or _EMPTY_PARAMETERS for function in functions}
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
    """System-prompt text for the prompt-based fallback: the tools, and the Hermes-style answer format."""
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
                "properties": {tool["function"]["name"]: tool["function"].get("parameters") or _EMPTY_PARAMETERS},
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


def _unwrap(tool: ToolLike) -> dict[str, Any]:
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


# -- the longest call a tool set allows: max_tokens from the schema ---------------------------------

#: Tokens added to the bound: the end-of-sequence token and a spare one.
CALL_TOKEN_MARGIN = 2
#: The longest a JSON string can spend on one character: a non-BMP character escaped as a surrogate pair.
_WORST_CHAR_BYTES = len(r"\ud83d\ude00")
_SAFE_CHARS = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}  # one byte each, never escaped


class UnboundedCallError(ValueError):
    """A tool's schema lets a call run arbitrarily long, so no ``max_tokens`` can hold every valid call."""


def max_call_tokens(tools: Sequence[ToolLike]) -> int:
    """A ``max_tokens`` that holds the longest call any of ``tools`` allows, for any byte-level tokenizer.

    Every token of a byte-level BPE (Qwen, Llama 3, GPT) or of a SentencePiece tokenizer with byte
    fallback covers at least one byte, so a call of B UTF-8 bytes is at most B tokens;
    :func:`max_call_bytes` is B, plus :data:`CALL_TOKEN_MARGIN` for the end token. A forced call
    (``tool_choice`` required or named) is shorter than the counted ``<tool_call>`` form. Raises
    :class:`UnboundedCallError` naming the property that has no bound.

    Example::

        move = {"name": "move_to", "parameters": {"type": "object", "additionalProperties": False,
                "required": ["target_position"], "properties": {"target_position": {
                    "type": "array", "minItems": 3, "maxItems": 3,
                    "items": {"type": "integer", "minimum": -100, "maximum": 100}}}}}
        assert max_call_tokens([move]) == 100  # <tool_call>, name and [-100, -100, -100]: 98 bytes
    """
    return max_call_bytes(tools) + CALL_TOKEN_MARGIN


def max_call_bytes(tools: Sequence[ToolLike]) -> int:
    """UTF-8 bytes of the longest call of ``tools``, written as Hermes-style models write it::

        <tool_call>
        {"name": "<name>", "arguments": {<every property at its longest>}}
        </tool_call>

    with ``json.dumps``' separators (", " and ": "). Counted per JSON schema keyword: ``enum`` and
    ``const``; strings bounded by ``maxLength`` or an anchored ``pattern`` (``^...$``) of bounded
    width; integers by ``minimum`` and ``maximum``; numbers also need ``multipleOf`` (their digits
    are unbounded otherwise; prefer integers: xgrammar, vLLM's default structured-output backend,
    does not support ``multipleOf``, and jsonschema checks it in binary floats); arrays by ``maxItems``; objects with ``additionalProperties: false``;
    ``anyOf``/``oneOf`` and type lists by their longest branch. Optional properties count.
    """
    longest = 0
    for tool in tools:
        function = _unwrap(tool)
        name, parameters = function.get("name"), function.get("parameters") or _EMPTY_PARAMETERS
        try:
            arguments = _longest(parameters, "arguments")
        except UnboundedCallError as exc:
            raise UnboundedCallError(f"tool {name!r}: {exc}") from None
        frame = f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": }}\n</tool_call>'
        longest = max(longest, len(frame.encode()) + arguments)
    return longest


def _longest(schema: Any, where: str) -> int:
    """Bytes of the longest JSON value ``schema`` allows, or :class:`UnboundedCallError` naming ``where``."""
    if schema is True or schema == {}:
        raise UnboundedCallError(f"{where} accepts any value; give it a type and bounds")
    if not isinstance(schema, Mapping):
        raise UnboundedCallError(f"{where} has no schema object")
    if "const" in schema:
        return _encoded_bytes(schema["const"])
    if "enum" in schema:
        return max(_encoded_bytes(value) for value in schema["enum"])
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            return max(_longest(branch, f"{where}/{keyword}") for branch in schema[keyword])
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return max(_longest({**schema, "type": kind}, where) for kind in kinds)
    measure = _MEASURES.get(kinds)
    if measure is None:
        raise UnboundedCallError(f"{where} has type {kinds!r}; the bound needs one of {sorted(_MEASURES)}")
    return measure(schema, where)


def _encoded_bytes(value: Any) -> int:
    return len(json.dumps(value).encode())


def _string_bytes(schema: Mapping[str, Any], where: str) -> int:
    width, per_char, newline = schema.get("maxLength"), _WORST_CHAR_BYTES, 0
    if "pattern" in schema:
        pattern_width, safe = _pattern_width(schema["pattern"])
        if pattern_width is not None and (width is None or pattern_width < width):
            # Python's "$" (jsonschema validates with re.search) also matches before a final
            # newline, so a valid string may end with one more character, written "\n".
            width, per_char, newline = pattern_width, 1 if safe else _WORST_CHAR_BYTES, 2
    if width is None:
        raise UnboundedCallError(f"{where} is a string without maxLength or an anchored pattern of bounded width")
    return 2 + width * per_char + newline  # 2: the quotes


def _pattern_width(pattern: str) -> tuple[int | None, bool]:
    """The most characters an anchored (``^...$``) ``pattern`` matches, None if unbounded or not anchored;
    and whether each of them is printable ASCII that JSON writes as itself."""
    parsed = regex_parser.parse(pattern)
    items = list(parsed)
    anchored = (
        len(items) >= 2
        and items[0] == (regex_parser.AT, regex_parser.AT_BEGINNING)
        and items[-1] == (regex_parser.AT, regex_parser.AT_END)
    )
    width = parsed.getwidth()[1]
    if not anchored or width >= regex_parser.MAXREPEAT:
        return None, False
    return width, _ascii_only(items)


def _integer_bytes(schema: Mapping[str, Any], where: str) -> int:
    low, high = _range(schema, where)
    return max(len(str(math.ceil(low))), len(str(math.floor(high))))


def _number_bytes(schema: Mapping[str, Any], where: str) -> int:
    step = schema.get("multipleOf")
    if step is None:
        raise UnboundedCallError(
            f"{where} is a number without multipleOf: its digits are unbounded; use type integer with "
            "minimum and maximum (xgrammar, vLLM's default structured-output backend, does not support multipleOf)"
        )
    low, high = _range(schema, where)
    decimals = max(0, -Decimal(str(step)).normalize().as_tuple().exponent)
    whole = max(len(str(int(abs(bound)))) + (bound < 0) for bound in (low, high))
    return whole + (decimals + 1 if decimals else 2)  # "12.25", or "12.0" for a whole step


def _range(schema: Mapping[str, Any], where: str) -> tuple[float, float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is None or high is None:
        raise UnboundedCallError(f"{where} needs both a minimum and a maximum")
    return low, high


def _array_bytes(schema: Mapping[str, Any], where: str) -> int:
    count = schema.get("maxItems")
    if count is None or "prefixItems" in schema:
        raise UnboundedCallError(f"{where} is an array without maxItems (prefixItems are not counted)")
    if count == 0:
        return 2
    return 2 + count * _longest(schema.get("items", True), f"{where}/items") + (count - 1) * 2  # "[", ", ", "]"


def _object_bytes(schema: Mapping[str, Any], where: str) -> int:
    if schema.get("additionalProperties", True) is not False:
        raise UnboundedCallError(f"{where} is an object without additionalProperties: false")
    properties = schema.get("properties") or {}
    members = [_encoded_bytes(key) + 2 + _longest(value, f"{where}/{key}") for key, value in properties.items()]
    return 2 + sum(members) + 2 * max(0, len(members) - 1)  # "{", '"key": value', ", ", "}"


_MEASURES = {
    "string": _string_bytes,
    "integer": _integer_bytes,
    "number": _number_bytes,
    "boolean": lambda schema, where: len("false"),
    "null": lambda schema, where: len("null"),
    "array": _array_bytes,
    "object": _object_bytes,
}


def _ascii_only(parsed: Any) -> bool:
    """True if the parsed pattern can only match characters JSON writes as themselves (no class, no ``.``)."""
    for op, argument in parsed:
        if op == regex_parser.LITERAL:
            if argument not in _SAFE_CHARS:
                return False
        elif op == regex_parser.RANGE:
            low, high = argument
            if low < 0x20 or high > 0x7E or any(c in range(low, high + 1) for c in (ord('"'), ord("\\"))):
                return False
        elif op == regex_parser.IN:
            if not _ascii_only(argument):
                return False
        elif op in (regex_parser.MAX_REPEAT, regex_parser.MIN_REPEAT):
            if not _ascii_only(argument[2]):
                return False
        elif op == regex_parser.SUBPATTERN:
            if not _ascii_only(argument[3]):
                return False
        elif op == regex_parser.BRANCH:
            if not all(_ascii_only(branch) for branch in argument[1]):
                return False
        elif op != regex_parser.AT:
            return False  # ".", negated sets, categories (\d, \w: Unicode in Python) and the rest
    return True
