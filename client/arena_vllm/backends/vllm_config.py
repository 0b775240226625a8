"""VLLMBackendConfig: the seed's constructor, validated, and buildable from the Hydra settings.

A value left out of the constructor is read from ``configs/backend/vllm.yaml`` (composed by the
one loader, with $AGENT_OVERRIDES), never from a copy here, so a hand-built config and the
agent's agree (in particular the timeout and retries, which must stay far below the OpenAI
SDK's 600 s and 2 retries for a game tick).

Example::

    from arena_vllm.backends import VLLMBackendConfig

    config = VLLMBackendConfig(model_path="Qwen/Qwen2.5-0.5B-Instruct", api_base="http://localhost:8000/v1",
                               temperature=0.7, max_tokens=256)
    config = VLLMBackendConfig.from_hydra(overrides=["backend.temperature=0.2"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from arena_vllm.config import (
    BackendSettings,
    HttpURL,
    MaxTokens,
    Retries,
    Temperature,
    TimeoutS,
    ToolChoice,
    TopP,
    env_overrides,
    load_settings,
)


class VLLMBackendConfig(BaseModel):
    """Where the vLLM server is, which model to ask, and how to sample; bad values fail here, not mid-game.

    ``model_path`` is the served model name; empty means "the model the server serves"
    (the first of ``/v1/models``). ``function_calling_format="prompt"`` skips native tool
    calls and always describes the tools in the prompt; ``"schema"`` asks for exactly one call as
    engine-constrained JSON (``response_format``), the shortest call vLLM can bound. Without ``api_key`` the key comes from
    configs/backend/vllm.yaml: $VLLM_API_KEY, then $OPENAI_API_KEY (as the OpenAI SDK reads it),
    so code written for an open server runs unchanged against one started with a key.

    Example::

        config = VLLMBackendConfig(model_path="tiny", api_base="http://127.0.0.1:8000/v1", timeout_s=5)
        assert config.server_root == "http://127.0.0.1:8000"
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model_path: str
    api_base: HttpURL
    api_key: SecretStr
    temperature: Temperature
    top_p: TopP
    max_tokens: MaxTokens
    timeout_s: TimeoutS
    max_retries: Retries
    tool_choice: ToolChoice
    function_calling_format: Literal["openai", "schema", "prompt"]

    def __init__(self, **given: Any) -> None:
        """The seed's constructor: what ``given`` leaves out comes from configs/backend/vllm.yaml.

        Filled here, before validation, not in a validator: validating (``model_validate``, an
        assignment, a copy) stays pure, and the configs are composed only when a field is left out,
        at each construction (the environment they read, $AGENT_OVERRIDES and the key, may change).
        """
        if set(type(self).model_fields) - set(given):
            given = {**self._fields(load_settings(env_overrides()).backend), **given}
        super().__init__(**given)

    @property
    def server_root(self) -> str:
        """The server's root, where vLLM serves ``/health``: ``api_base`` without its trailing ``/v1``."""
        return self.api_base.removesuffix("/v1")

    @classmethod
    def from_settings(cls, backend: BackendSettings) -> VLLMBackendConfig:
        """From the validated ``settings.backend``; ``function_calling.enabled: false`` means prompt-based calls."""
        return cls(**cls._fields(backend))

    @staticmethod
    def _fields(backend: BackendSettings) -> dict[str, Any]:
        """This class's fields from the backend settings (the two are named as the seed named them)."""
        calling = backend.function_calling
        return {
            "model_path": backend.model,
            "api_base": backend.api_base,
            "api_key": backend.api_key,
            "temperature": backend.temperature,
            "top_p": backend.top_p,
            "max_tokens": backend.max_tokens,
            "timeout_s": backend.timeout_s,
            "max_retries": backend.max_retries,
            "tool_choice": calling.tool_choice,
            "function_calling_format": calling.format if calling.enabled else "prompt",
        }

    @classmethod
    def from_hydra(cls, overrides: Sequence[str] = (), config_dir: Path | None = None) -> VLLMBackendConfig:
        """Compose ``configs/`` with $AGENT_OVERRIDES, then ``overrides`` (which win); use the backend part."""
        settings = load_settings([*env_overrides(), *overrides], config_dir)
        return cls.from_settings(settings.backend)
