"""Client backends: how an agent asks an LLM server for text and tool calls.

Example::

    from arena_vllm.backends import VLLMBackend, VLLMBackendConfig

    backend = VLLMBackend(VLLMBackendConfig.from_hydra(["backend.temperature=0.2"]))
    print(backend.status().reason)
"""

from arena_vllm.backends.base import BackendStatus, GenerationResult, LLMBackend, ResultMetadata, ToolCall
from arena_vllm.backends.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ModelNotServedError,
    RequestRejectedError,
    ServerError,
    map_openai_error,
)
from arena_vllm.backends.vllm import VLLMBackend
from arena_vllm.backends.vllm_config import VLLMBackendConfig
from arena_vllm.tool_shapes import normalize_tools, parse_tool_call_from_text, validate_tool_call

__all__ = [
    "BackendConnectionError",
    "BackendError",
    "BackendStatus",
    "BackendTimeoutError",
    "GenerationResult",
    "LLMBackend",
    "ModelNotServedError",
    "RequestRejectedError",
    "ResultMetadata",
    "ServerError",
    "ToolCall",
    "VLLMBackend",
    "VLLMBackendConfig",
    "map_openai_error",
    "normalize_tools",
    "parse_tool_call_from_text",
    "validate_tool_call",
]
