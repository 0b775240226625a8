"""The longest call a tool set allows, in bytes and tokens: ``max_tokens`` from the schema, beside the backend
that sends it (the backend's ``max_tokens_from_tools`` and the policy's budget use it).

Example::

    from arena_vllm.backends.call_bound import max_call_tokens

    assert max_call_tokens([{"name": "idle", "parameters": {"type": "object", "properties": {},
                                                            "additionalProperties": False}}]) == 50
"""

from __future__ import annotations

import json
import math
import re._parser as regex_parser  # the stdlib's regex parser: sizes a pattern without matching anything
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from arena_vllm.tool_shapes import EMPTY_PARAMETERS, ToolLike, unwrap_tool

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
        function = unwrap_tool(tool)
        name, parameters = function.get("name"), function.get("parameters") or EMPTY_PARAMETERS
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
