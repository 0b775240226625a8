"""VLLMBackendConfig: the seed's constructor, validated, and buildable from the Hydra settings.

Defaults come from :class:`arena_vllm.config.BackendSettings`, so ``configs/backend/vllm.yaml``
and a hand-built config agree (in particular the timeout and retries, which must stay far
below the OpenAI SDK's 600 s and 2 retries for a game tick).

Example::

    from arena_vllm.backends import VLLMBackendConfig

    config = VLLMBackendConfig(model_path="Qwen/Qwen2.5-0.5B-Instruct", api_base="http://localhost:8000/v1",
                               temperature=0.7, max_tokens=256)
    config = VLLMBackendConfig.from_hydra(overrides=["backend.temperature=0.2"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from arena_vllm.config import BackendSettings, env_overrides, http_url, load_settings

_DEFAULTS = BackendSettings()
#: Read, in this order, when no ``api_key`` is given: vLLM's own variable, then the OpenAI SDK's.
API_KEY_ENV = ("VLLM_API_KEY", "OPENAI_API_KEY")


class VLLMBackendConfig(BaseModel):
    """Where the vLLM server is, which model to ask, and how to sample; bad values fail here, not mid-game.

    ``model_path`` is the served model name; empty means "the model the server serves"
    (the first of ``/v1/models``). ``function_calling_format="prompt"`` skips native tool
    calls and always describes the tools in the prompt. Without ``api_key`` the key comes from
    $VLLM_API_KEY, then $OPENAI_API_KEY (as the OpenAI SDK does), so code written for an open
    server runs unchanged against one started with a key.

    Example::

        config = VLLMBackendConfig(model_path="tiny", api_base="http://127.0.0.1:8000/v1", timeout_s=5)
        assert config.server_root == "http://127.0.0.1:8000"
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model_path: str = _DEFAULTS.model
    api_base: str = _DEFAULTS.api_base
    api_key: SecretStr = _DEFAULTS.api_key
    temperature: float = Field(_DEFAULTS.temperature, ge=0.0, le=2.0)
    top_p: float = Field(_DEFAULTS.top_p, gt=0.0, le=1.0)
    max_tokens: int = Field(_DEFAULTS.max_tokens, ge=1)
    timeout_s: float = Field(_DEFAULTS.timeout_s, gt=0.0, le=600.0)
    max_retries: int = Field(_DEFAULTS.max_retries, ge=0, le=10)
    tool_choice: str = Field(_DEFAULTS.function_calling.tool_choice, min_length=1)
    function_calling_format: Literal["openai", "prompt"] = _DEFAULTS.function_calling.format

    @model_validator(mode="before")
    @classmethod
    def _key_from_environment(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("api_key") is None:
            key = next((os.environ[name] for name in API_KEY_ENV if os.environ.get(name)), None)
            data = {**data, "api_key": key or _DEFAULTS.api_key}
        return data

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("tool_choice")
    @classmethod
    def _asks_for_a_call(cls, value: str) -> str:
        if value == "none":
            raise ValueError("tool_choice 'none' asks for no tool call; use auto, required or a tool name")
        return value

    @property
    def server_root(self) -> str:
        """The server's root, where vLLM serves ``/health``: ``api_base`` without its trailing ``/v1``."""
        return self.api_base.removesuffix("/v1")

    @classmethod
    def from_settings(cls, backend: BackendSettings) -> "VLLMBackendConfig":
        """From the validated ``settings.backend``; ``function_calling.enabled: false`` means prompt-based calls."""
        calling = backend.function_calling
        return cls(
            model_path=backend.model,
            api_base=backend.api_base,
            api_key=backend.api_key,
            temperature=backend.temperature,
            top_p=backend.top_p,
            max_tokens=backend.max_tokens,
            timeout_s=backend.timeout_s,
            max_retries=backend.max_retries,
            tool_choice=calling.tool_choice,
            function_calling_format=calling.format if calling.enabled else "prompt",
        )

    @classmethod
    def from_hydra(cls, overrides: Sequence[str] = (), config_dir: Path | None = None) -> "VLLMBackendConfig":
        """Compose ``configs/`` with $ARENA_OVERRIDES, then ``overrides`` (which win); use the backend part."""
        settings = load_settings([*env_overrides(), *overrides], config_dir)
        return cls.from_settings(settings.backend)

