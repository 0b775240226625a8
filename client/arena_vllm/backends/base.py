"""What every backend returns and promises, so the agent service does not depend on vLLM itself.

Example::

    from arena_vllm.backends import GenerationResult

    result = GenerationResult(text="hi", tokens_used=3, finish_reason="stop", metadata={"latency_s": 0.1})
    print(result.metadata.get("tool_call"))  # None: no tool was called
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from arena_vllm.tool_shapes import ToolLike


class ToolCall(TypedDict):
    """A call as every path returns it, whether the server returned it natively or the model wrote it as text."""

    name: str
    arguments: dict[str, Any]


class ResultMetadata(TypedDict, total=False):
    """What a :class:`GenerationResult` says besides its text: the contract between backends and the policy.

    Every result has ``model``, ``prompt_tokens``, ``completion_tokens`` and ``latency_s``; a tool
    call adds ``tool_call`` (schema-valid) or ``tool_call_error`` (why not), ``tool_call_source``
    and ``tools_seen_in``, and on the prompt path ``prompt_reason`` (why the tools went into the prompt).
    """

    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    tool_call: ToolCall
    tool_call_error: str
    #: ``native``: the server's tool call (or engine-constrained JSON); ``prompt``: the call written as text.
    tool_call_source: Literal["native", "prompt"]
    prompt_reason: str
    #: Where the offered tools reached the model: ``template``, ``system_prompt`` or ``unknown``.
    tools_seen_in: str


@dataclass
class GenerationResult:
    """One model answer (the seed's shape); ``metadata`` is a :class:`ResultMetadata`."""

    text: str
    tokens_used: int
    finish_reason: str
    metadata: ResultMetadata = field(default_factory=lambda: ResultMetadata())


@dataclass(frozen=True)
class BackendStatus:
    """Whether the backend can answer now; ``reason`` says which check failed and why."""

    available: bool
    reason: str
    models: list[str] = field(default_factory=list)
    #: One row per server behind a ReplicaPool (api_base, up, in_flight, reason); empty for one server.
    replicas: list[dict[str, Any]] = field(default_factory=list)
    #: Where offered tools reach the model: "template", "system_prompt" (its template drops them) or "unknown".
    tools_seen_in: str = "unknown"


@runtime_checkable
class LLMBackend(Protocol):
    """Exactly what the agent service calls on a backend: readiness, one tool call per agent, closing.

    Tools are flat ``{name, description, parameters}``, OpenAI-shaped or ``ToolSpec`` models.
    :class:`~arena_vllm.backends.VLLMBackend` offers more (sync calls, text, streaming) for
    other callers; a stand-in for the service needs only these three.

    Example::

        from arena_vllm.backends import LLMBackend, VLLMBackend, VLLMBackendConfig

        assert isinstance(VLLMBackend(VLLMBackendConfig(api_base="http://127.0.0.1:8000/v1")), LLMBackend)
    """

    async def astatus(self) -> BackendStatus: ...

    async def agenerate_with_tools(
        self,
        prompt: str,
        tools: Sequence[ToolLike],
        system_prompt: str | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult: ...

    async def aclose(self) -> None: ...
