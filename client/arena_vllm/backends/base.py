"""What every backend returns and promises, so the agent service does not depend on vLLM itself.

Example::

    from arena_vllm.backends import GenerationResult

    result = GenerationResult(text="hi", tokens_used=3, finish_reason="stop", metadata={"latency_s": 0.1})
    print(result.metadata.get("tool_call"))  # None: no tool was called
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from arena_vllm.backends.tools import ToolLike


@dataclass
class GenerationResult:
    """One model answer (the seed's shape).

    ``metadata`` always has ``model``, ``prompt_tokens``, ``completion_tokens`` and ``latency_s``;
    tool calls add ``tool_call`` or ``tool_call_error``, ``tool_call_source`` and, on the
    fallback path, ``fallback_reason``.
    """

    text: str
    tokens_used: int
    finish_reason: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendStatus:
    """Whether the backend can answer now; ``reason`` says which check failed and why."""

    available: bool
    reason: str
    models: list[str] = field(default_factory=list)
    #: One row per server behind a ReplicaPool (api_base, up, in_flight, reason); empty for one server.
    replicas: list[dict[str, Any]] = field(default_factory=list)


@runtime_checkable
class LLMBackend(Protocol):
    """The calls the agent service makes; tools are flat ``{name, description, parameters}`` or OpenAI-shaped."""

    def is_available(self) -> bool: ...

    def generate(
        self, prompt: str, system_prompt: str | None = None, temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult: ...

    def generate_with_tools(
        self, prompt: str, tools: Sequence[ToolLike], system_prompt: str | None = None, tool_choice: str | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
    ) -> GenerationResult: ...

    async def astatus(self) -> BackendStatus: ...

    async def agenerate(
        self, prompt: str, system_prompt: str | None = None, temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> GenerationResult: ...

    async def agenerate_with_tools(
        self, prompt: str, tools: Sequence[ToolLike], system_prompt: str | None = None, tool_choice: str | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
    ) -> GenerationResult: ...
