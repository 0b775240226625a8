"""Chat-completion requests and answers as plain data, with no I/O.

The sync and async backends differ only in how they send a request; everything they send
and everything they read from the answer is built and interpreted here, once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage

from arena_vllm.backends.base import GenerationResult
from arena_vllm.tool_shapes import (
    CHOICES_WITHOUT_A_NAME,
    check_tool_choice,
    one_call_schema,
    parse_tool_call_from_text,
    tool_names,
    tool_prompt,
    tools_text,
    validate_tool_call,
)

Request = dict[str, Any]


def text_request(model: str, prompt: str, system_prompt: str | None, sampling: Mapping[str, Any]) -> Request:
    """Keyword arguments for ``chat.completions.create`` asking for plain text."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return {"model": model, "messages": [*messages, {"role": "user", "content": prompt}], **sampling}


def native_tools_request(
    model: str,
    prompt: str,
    system_prompt: str | None,
    tools: Sequence[Mapping[str, Any]],
    tool_choice: str,
    sampling: Mapping[str, Any],
) -> Request:
    """A request with strict tools, one call at most, and ``tool_choice`` as OpenAI spells it."""
    choice: Any = tool_choice
    if tool_choice not in CHOICES_WITHOUT_A_NAME:
        choice = {"type": "function", "function": {"name": tool_choice}}
    return {
        **text_request(model, prompt, system_prompt, sampling),
        "tools": list(tools),
        "tool_choice": choice,
        "parallel_tool_calls": False,
    }


def schema_tools_request(
    model: str,
    prompt: str,
    system_prompt: str | None,
    tools: Sequence[Mapping[str, Any]],
    sampling: Mapping[str, Any],
) -> Request:
    """A request whose answer is exactly one call of ``tools``, ``{"<tool>": {<arguments>}}``, as JSON the engine
    constrains from its first token to its last (:func:`~arena_vllm.tool_shapes.one_call_schema`).

    No call can run on (more calls, text around it) and, with the engine's
    ``disable_any_whitespace``, none has free whitespace; vLLM's own schema for
    ``tool_choice=required`` is an array of any length (0.26) and 0.32's still allows free
    whitespace in the arguments. The request carries no ``tools``, so they are written into the
    system prompt, one short line each, with an example call: a template that drops tools
    (SmolLM2's) never taught the model any call envelope either.
    """
    first = tools[0]["function"]
    example = json.dumps({first["name"]: _example_arguments(first.get("parameters", {}))}, separators=(",", ":"))
    system = with_tools_text(system_prompt, f"{tools_text(tools)}\nAnswer with one JSON object, for example {example}")
    return {
        **text_request(model, prompt, system, sampling),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "tool_call", "schema": one_call_schema(tools), "strict": True},
        },
    }


def schema_call(message: ChatCompletionMessage) -> tuple[dict[str, Any] | None, str | None]:
    """``(call, None)`` from a :func:`schema_tools_request` answer, ``(None, why)`` when it is not one (cut short)."""
    text = message.content or ""
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"no complete call ({exc.msg}): {text[:200]!r}"
    if not (isinstance(answer, dict) and len(answer) == 1):
        return None, f"the answer is not one {{tool: arguments}} object: {text[:200]!r}"
    ((name, arguments),) = answer.items()
    return {"name": name, "arguments": arguments}, None


def _example_arguments(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A call's arguments for the system prompt's example: each parameter's first choice (its type's name otherwise)."""
    return {
        name: schema["enum"][0] if "enum" in schema else schema.get("type", "value")
        for name, schema in parameters.get("properties", {}).items()
    }


def with_tools_text(system_prompt: str | None, text: str) -> str:
    """The system prompt with the tools written after it (for a chat template that drops ``tools``)."""
    return "\n\n".join(part for part in (system_prompt, text) if part)


def prompt_tools_request(
    model: str,
    prompt: str,
    system_prompt: str | None,
    tools: Sequence[Mapping[str, Any]],
    sampling: Mapping[str, Any],
) -> Request:
    """A text request whose system prompt describes ``tools`` and asks for one call in ``<tool_call>`` tags."""
    return text_request(model, prompt, with_tools_text(system_prompt, tool_prompt(tools)), sampling)


def tools_for_choice(tools: Sequence[Mapping[str, Any]], tool_choice: str) -> list[Mapping[str, Any]]:
    """The tools a call may use: all of them, or only the one ``tool_choice`` names."""
    check_tool_choice(tool_choice, tool_names(tools))
    if tool_choice in CHOICES_WITHOUT_A_NAME:
        return list(tools)
    return [tool for tool in tools if tool["function"]["name"] == tool_choice]


def native_call(message: ChatCompletionMessage) -> tuple[dict[str, Any] | None, str | None]:
    """``(call, None)`` from the message's first tool call, ``(None, why)`` if its arguments are not JSON,
    ``(None, None)`` if it has none."""
    function = next((getattr(call, "function", None) for call in message.tool_calls or []), None)
    if function is None:
        return None, None
    try:
        arguments = json.loads(function.arguments or "{}")
    except json.JSONDecodeError as exc:
        return None, f"arguments of the {function.name!r} call are not JSON ({exc.msg}): {function.arguments[:200]!r}"
    return {"name": function.name, "arguments": arguments}, None


def written_call(message: ChatCompletionMessage) -> dict[str, Any] | None:
    """A call the model wrote in its text instead of returning it as a tool call."""
    return parse_tool_call_from_text(message.content or "")


def judge_call(
    call: dict[str, Any] | None, error: str | None, tools: Sequence[Mapping[str, Any]], source: str, answer: str = ""
) -> dict[str, Any]:
    """The tool metadata: ``tool_call`` if the call fits ``tools``, else ``tool_call_error`` saying why."""
    if call is not None and error is None:
        error = validate_tool_call(call["name"], call["arguments"], tools)
    if call is None and error is None:
        error = f"no tool call in the model's answer: {answer[:200]!r}"
    if error:
        return {"tool_call_source": source, "tool_call_error": error}
    return {"tool_call_source": source, "tool_call": call}


def chunk_text(chunk: ChatCompletionChunk) -> str:
    """The text a streamed chunk adds (empty for role-only and final chunks)."""
    return (chunk.choices[0].delta.content or "") if chunk.choices else ""


@dataclass
class Tally:
    """Tokens and time over the requests behind one result (two when the prompt path follows a native try)."""

    model: str
    started: float = field(default_factory=time.perf_counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, response: ChatCompletion) -> ChatCompletionMessage:
        """Count the response's usage and return its message."""
        if response.usage is not None:
            self.prompt_tokens += response.usage.prompt_tokens
            self.completion_tokens += response.usage.completion_tokens
        return response.choices[0].message

    def result(self, response: ChatCompletion, text: str | None = None, **metadata: Any) -> GenerationResult:
        """The result for the last ``response``, with token counts, latency and the given metadata;
        ``text`` replaces the message's content (a JSON-constrained answer is the call, not text)."""
        choice = response.choices[0]
        return GenerationResult(
            text=(choice.message.content or "") if text is None else text,
            tokens_used=self.prompt_tokens + self.completion_tokens,
            finish_reason=choice.finish_reason or "",
            metadata={
                "model": response.model or self.model,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "latency_s": round(time.perf_counter() - self.started, 4),
                **metadata,
            },
        )
