"""Settings: pydantic models and the one loader that composes them from ``configs/`` with Hydra.

Hydra composes YAML (config groups, command-line style overrides, ``${oc.env:...}``
interpolation); pydantic validates the result, so every bad value is reported with the key,
the value and what is allowed. Nothing else in the project reads YAML.

Example::

    from arena_vllm.config import load_settings

    settings = load_settings(["profile=gpu-8gb", "backend.temperature=0.2"])
    print(settings.profile.model, settings.backend.api_base)
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Literal, Sequence
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

#: Environment variable naming the configs folder (the containers mount it at /app/configs).
CONFIG_DIR_ENV = "ARENA_CONFIG_DIR"
#: Environment variable holding extra Hydra overrides, shell-quoted, e.g. "profile=cpu agent.port=5001".
OVERRIDES_ENV = "ARENA_OVERRIDES"
_SIZE_PATTERN = r"^[0-9]+[KMGT]?$"


def http_url(value: str) -> str:
    """An http(s) URL without its trailing slash; a ValueError worded for the user otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL like http://localhost:8000/v1, not {value!r}")
    return value.rstrip("/")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key, the value and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionCallingSettings(_Model):
    """How the client asks for tool calls."""

    enabled: bool = True
    format: Literal["openai", "prompt"] = Field(
        "openai", description="openai: native tool calls first, prompt fallback; prompt: prompt-based only"
    )
    tool_choice: str = Field("required", min_length=1, description="required, auto, or the name of one tool")


class BackendSettings(_Model):
    """Where the vLLM OpenAI server is and how to sample from it (configs/backend/vllm.yaml)."""

    model: str = Field("", description="served model name; empty = the one the server serves")
    host: str = "localhost"
    port: int = Field(8000, ge=1, le=65535)
    api_base: str = "http://localhost:8000/v1"
    api_bases: list[str] = Field([], description="several vLLM replicas (comma-separated in env); empty = api_base")
    api_key: SecretStr = SecretStr("EMPTY")
    api_key_file: str | None = Field(None, description="a file whose content replaces api_key (compose secret)")
    tensor_parallel_size: int = Field(1, ge=1)
    dtype: str = "auto"
    max_model_len: int = Field(4096, ge=256)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    timeout_s: float = Field(30.0, gt=0.0, le=600.0)
    max_retries: int = Field(1, ge=0, le=10)
    function_calling: FunctionCallingSettings = FunctionCallingSettings()

    @model_validator(mode="before")
    @classmethod
    def _key_from_file(cls, data: Any) -> Any:
        """Read the API key from a secret file, so it never sits in the environment."""
        path = data.get("api_key_file") if isinstance(data, dict) else None
        if path:
            try:
                key = Path(path).read_text().strip()
            except OSError as exc:
                raise ValueError(f"cannot read api_key_file {path}: {exc.strerror}") from None
            if key:
                data = {**data, "api_key": key}
        return data

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("api_bases", mode="before")
    @classmethod
    def _http_urls(cls, value: Any) -> Any:
        """A list, or one string of comma-separated URLs (as $VLLM_API_BASES carries them)."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [http_url(item) if isinstance(item, str) else item for item in value]
        return value


class ProfileSettings(_Model):
    """Engine settings for one class of hardware (configs/profile/*.yaml)."""

    name: str
    device: Literal["cuda", "cpu"]
    min_vram_gib: float | None = Field(None, gt=0, description="smallest card this GPU profile fits")
    model: str = Field(min_length=1)
    dtype: str = "auto"
    quantization: str | None = None
    max_model_len: int = Field(ge=256)
    gpu_memory_utilization: float = Field(gt=0.0, le=1.0)
    kv_cache_memory_bytes: str | None = Field(None, pattern=_SIZE_PATTERN)
    max_num_seqs: int = Field(ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    tool_call_parser: str = Field(min_length=1)
    enforce_eager: bool = False
    extra_args: list[str] = []

    @model_validator(mode="after")
    def _gpu_profiles_need_vram(self) -> "ProfileSettings":
        if self.device == "cuda" and self.min_vram_gib is None:
            raise ValueError(f"GPU profile {self.name!r} needs min_vram_gib (used by VLLM_PROFILE=auto)")
        return self


class ToolSpec(_Model):
    """One tool in the flat shape Agent Arena uses: name, description, JSON-schema parameters."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        if value.get("type") != "object":
            raise ValueError("tool parameters must be a JSON schema of type 'object'")
        return value


class ToolSetSettings(_Model):
    """A named set of tools (configs/tools/*.yaml)."""

    name: str
    tools: list[ToolSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "ToolSetSettings":
        names = [tool.name for tool in self.tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique; repeated: {duplicates}")
        return self


class AgentSettings(_Model):
    """The agent service that answers the game (configs/agent/default.yaml)."""

    host: str = "0.0.0.0"
    port: int = Field(5000, ge=1, le=65535)
    tick_deadline_s: float = Field(10.0, gt=0.0, le=600.0)
    max_concurrency: int = Field(64, ge=1, le=4096)
    max_agents_per_tick: int = Field(256, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_entities_in_prompt: int = Field(8, ge=0, le=100)
    tool_choice: str = Field("required", min_length=1)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(128, ge=1)
    system_prompt: str = Field(min_length=1)


class Settings(_Model):
    """Everything, validated; built once at start by :func:`load_settings`."""

    backend: BackendSettings
    profile: ProfileSettings
    tools: ToolSetSettings
    agent: AgentSettings

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> "Settings":
        names = {tool.name for tool in self.tools.tools}
        for key, choice in (
            ("backend.function_calling.tool_choice", self.backend.function_calling.tool_choice),
            ("agent.tool_choice", self.agent.tool_choice),
        ):
            if choice not in {"auto", "required", "none"} and choice not in names:
                raise ValueError(f"{key}={choice!r} is neither auto/required/none nor a tool in {sorted(names)}")
        return self


def default_config_dir() -> Path:
    """The configs folder: $ARENA_CONFIG_DIR, else the repository's ``configs/``."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV]).resolve()
    return Path(__file__).resolve().parents[2] / "configs"


def available_options(group: str, config_dir: Path | None = None) -> list[str]:
    """Names of the YAML files in one config group, e.g. ``available_options("profile")``."""
    folder = (config_dir or default_config_dir()) / group
    return sorted(path.stem for path in folder.glob("*.yaml"))


def env_overrides() -> list[str]:
    """Overrides from $ARENA_OVERRIDES (shell-quoted), so containers take them from the environment."""
    return shlex.split(os.environ.get(OVERRIDES_ENV, ""))


def compose_raw(overrides: Sequence[str] = (), config_dir: Path | None = None) -> dict[str, Any]:
    """Compose ``config.yaml`` with Hydra and return plain, interpolated data (no validation)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    folder = (config_dir or default_config_dir()).resolve()
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in {folder}; set {CONFIG_DIR_ENV} to the repository's configs/ folder")
    try:
        with initialize_config_dir(config_dir=str(folder), version_base=None):
            cfg = compose(config_name="config", overrides=list(overrides))
        data = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_explain_hydra_error(exc, folder)) from None
    assert isinstance(data, dict)
    return data


def load_settings(overrides: Sequence[str] = (), config_dir: Path | None = None) -> Settings:
    """Compose and validate the settings; raises :class:`ConfigError` naming every bad key."""
    data = compose_raw(overrides, config_dir)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain_validation_error(exc)) from None


def _explain_validation_error(exc: ValidationError) -> str:
    lines = [f"invalid configuration ({exc.error_count()} problem(s)):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "<root>"
        value = "<secret>" if "api_key" in key else repr(error.get("input"))
        if isinstance(error.get("input"), dict):
            value = "{...}"
        lines.append(f"  {key} = {value}: {error['msg']}")
    return "\n".join(lines)


def _explain_hydra_error(exc: Exception, folder: Path) -> str:
    message = str(exc).strip()
    match = re.search(r"Could not find '(\w+)/([^']+)'", message)
    if match:
        group, option = match.groups()
        choices = ", ".join(available_options(group, folder)) or "none"
        return f"unknown {group} {option!r}; available in {folder / group}: {choices}"
    return f"cannot compose the configuration from {folder}: {message}"
