"""Settings: pydantic models and the one loader that composes them from ``configs/`` with Hydra.

Hydra composes YAML (config groups, command-line style overrides, ``${oc.env:...}``
interpolation); pydantic validates the result, so every bad value is reported with the key,
the value and what is allowed. Nothing else in the project reads YAML. The YAML holds every
value and these models only types and bounds (configs/README.md lists each value's home;
tests/unit/test_config_homes.py fails on a default here for a key the YAML sets).

Example::

    from arena_vllm.config import load_settings

    settings = load_settings(["profile=gpu-8gb", "backend.temperature=0.2"])
    print(settings.profile.model, settings.backend.api_base)
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from arena_vllm.tool_shapes import check_tool_choice, normalize_tools

#: The checkout this package sits in (client/arena_vllm/ -> the root) when installed editable.
CHECKOUT = Path(__file__).resolve().parents[2]
#: Environment variable naming the configs folder (the containers mount it at /app/configs).
CONFIG_DIR_ENV = "ARENA_CONFIG_DIR"
#: Extra Hydra overrides, shell-quoted, one variable per service with the same name on the host and in its
#: container: the agent's (and this library's, e.g. "scene=plain agent.port=5001") ...
OVERRIDES_ENV = "AGENT_OVERRIDES"
#: ... and the vLLM server's (ops/run_vllm_server.py, e.g. "profile.max_model_len=4096").
VLLM_OVERRIDES_ENV = "VLLM_OVERRIDES"
#: The one name both containers read before; still read, with a deprecation line, where the service's is unset.
LEGACY_OVERRIDES_ENV = "ARENA_OVERRIDES"
_SIZE_PATTERN = r"^[0-9]+[KMGT]?$"
#: The hardware a profile is written for, and the stack (image, compose files) that runs it.
Device = Literal["gpu", "cpu"]


def check_tool_set(tools: Sequence[Any]) -> None:
    """:func:`~arena_vllm.tool_shapes.normalize_tools`' checks (names, schemas, no repeats) on a tool set."""
    normalize_tools(tools)


def read_secret_file(path: str | None, setting: str, *, optional: bool = False) -> str | None:
    """The one reader of secret files (API keys, tokens): the content stripped, or None when no file is set or it
    is empty, or, with ``optional`` (a default path where nothing may be mounted), when it does not exist.

    Any other file that cannot be read raises ConfigError in one line naming the setting, the file and the fix:
    auth or a token silently off would be worse than not starting.
    """
    if not path:
        return None
    try:
        value = Path(path).read_text().strip()
    except FileNotFoundError:
        if optional:
            return None
        raise ConfigError(f"{setting}: cannot read {path}: no such file; create it or unset {setting}") from None
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot read {path} as uid {os.getuid()}: {exc.strerror}; make it readable by that user "
            f"(`sudo chown {os.getuid()} FILE` or chmod 644) or unset {setting}"
        ) from None
    return value or None


def http_url(value: str) -> str:
    """An http(s) URL without its trailing slash; a ValueError worded for the user otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL like http://localhost:8000/v1, not {value!r}")
    return value.rstrip("/")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key, the value and the fix."""


#: Bounds shared by the settings and :class:`~arena_vllm.backends.VLLMBackendConfig`, written once.
HttpURL = Annotated[str, AfterValidator(http_url)]
ToolChoice = Annotated[str, AfterValidator(check_tool_choice)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]
MaxTokens = Annotated[int, Field(ge=1)]
#: At most the OpenAI SDK's 600 s default; the YAML's value stays far below it, inside a tick.
TimeoutS = Annotated[float, Field(gt=0.0, le=600.0)]
Retries = Annotated[int, Field(ge=0, le=10)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionCallingSettings(_Model):
    """How the client asks for tool calls."""

    enabled: bool
    format: Literal["openai", "schema", "prompt"] = Field(
        description="openai: native tool calls first, then the prompt path; schema: one call as engine-constrained JSON "
        "(response_format); prompt: prompt-based only"
    )
    tool_choice: ToolChoice = Field(description="required, auto, or the name of one tool (never none)")


class BackendSettings(_Model):
    """Where the vLLM OpenAI server is and how to sample from it (configs/backend/vllm.yaml)."""

    model: str = Field(description="served model name; empty = the one the server serves")
    host: str
    port: Port
    api_base: HttpURL
    api_bases: list[HttpURL] = Field(description="several vLLM replicas (comma-separated in env); empty = api_base")
    api_key: SecretStr
    api_key_file: str | None = Field(description="a file whose content replaces api_key (compose secret)")
    temperature: Temperature
    top_p: TopP
    max_tokens: MaxTokens
    max_tokens_from_tools: bool = Field(
        description="cap a forced call's max_tokens at the longest call its tools allow (max_call_tokens)"
    )
    timeout_s: TimeoutS
    max_retries: Retries
    function_calling: FunctionCallingSettings

    @model_validator(mode="before")
    @classmethod
    def _key_from_file(cls, data: Any) -> Any:
        """Read the API key from a secret file, so it never sits in the environment."""
        path = data.get("api_key_file") if isinstance(data, dict) else None
        key = read_secret_file(path, "backend.api_key_file")
        return {**data, "api_key": key} if key else data

    @field_validator("api_bases", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A list, or one string of comma-separated URLs (as $VLLM_API_BASES carries them)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class ProfileSettings(_Model):
    """Engine settings for one class of hardware (configs/profile/*.yaml)."""

    name: str
    device: Device
    min_vram_gib: float | None = Field(gt=0, description="smallest card this GPU profile fits")
    model: str = Field(min_length=1)
    dtype: str
    quantization: str | None
    max_model_len: int = Field(ge=256)
    gpu_memory_utilization: float = Field(gt=0.0, le=1.0)
    vram_headroom_gib: float = Field(ge=0.0, description="VRAM the entrypoint leaves free beyond the budget")
    kv_cache_memory_bytes: str | None = Field(pattern=_SIZE_PATTERN)
    max_num_seqs: int = Field(ge=1)
    tensor_parallel_size: int = Field(ge=1)
    tool_call_parser: str = Field(min_length=1)
    enforce_eager: bool
    extra_args: list[str]

    @model_validator(mode="after")
    def _gpu_profiles_need_vram(self) -> ProfileSettings:
        if self.device == "gpu" and self.min_vram_gib is None:
            raise ValueError(f"GPU profile {self.name!r} needs min_vram_gib (used by VLLM_PROFILE=auto)")
        return self

    def engine_flags(self) -> list[str]:
        """vLLM flags for the keys that need no planning (quantization, KV cache size, eager mode, extra_args).

        One mapping for every way the profile reaches vLLM: the container entrypoint and
        ``ops export k8s`` (the chart's ``extraArgs``) both pass these.
        """
        flags: list[str] = []
        if self.quantization:
            flags += ["--quantization", self.quantization]
        if self.kv_cache_memory_bytes:
            flags += ["--kv-cache-memory-bytes", self.kv_cache_memory_bytes]
        if self.enforce_eager:
            flags.append("--enforce-eager")
        return [*flags, *self.extra_args]


class ToolSpec(_Model):
    """One tool in the flat shape Agent Arena uses: name, description, JSON-schema parameters."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str = Field(
        default="", description="left out of the request when empty (a name like idle says enough)"
    )
    parameters: dict[str, Any]


class ToolSetSettings(_Model):
    """A named set of tools (configs/tools/*.yaml), checked by the same rules as every request's tools."""

    name: str
    tools: list[ToolSpec] = Field(min_length=1)

    @field_validator("tools")
    @classmethod
    def _valid_tool_set(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        check_tool_set(tools)
        return tools


class DebugSettings(_Model):
    """The decision inspector: ``/debug`` and Agent Arena's ``/debug/*`` endpoints (configs/agent/default.yaml)."""

    enabled: bool | Literal["auto"] = Field(
        description="auto: on only when agent.published_host (else agent.host) is a loopback address"
    )
    ticks_per_agent: int = Field(ge=1, le=10_000, description="decisions kept per agent, newest first")
    max_bytes: int = Field(
        ge=64 * 1024, description="cap on the stored traces (JSON + 1 KiB each), all agents together"
    )


class FallbackSettings(_Model):
    """The decision when the model fails or is late (Agent Arena SDK's ``fallback_decision`` order)."""

    enabled: bool = Field(description="false: idle with the reason instead")
    flee_distance: float = Field(ge=0.0, description="flee a hazard closer than this")
    flee_step: float = Field(gt=0.0, description="how far to step away from it")


class InputSettings(_Model):
    """Bounds on the numbers the game sends (configs/agent/default.yaml ``input``); past one: a 422 naming the field."""

    max_coordinate: float = Field(gt=0.0, description="|x|, |y|, |z| of positions, rotations, velocities")
    max_distance: float = Field(gt=0.0, description="distances and the perception radius")
    max_number: float = Field(gt=0.0, description="|any other number|: health, energy, damage, counts, progress")
    max_count: int = Field(ge=1, description="ticks, quantities, time limits, cell counts")


class AgentSettings(_Model):
    """The agent service that answers the game (configs/agent/default.yaml).

    Sampling (temperature, max_tokens, tool_choice) is the backend's (``backend.*``): one place.
    """

    host: str
    port: Port
    tick_deadline_s: float = Field(gt=0.0, le=600.0)
    max_concurrency: int = Field(ge=1, le=4096)
    max_agents_per_tick: int = Field(ge=1)
    max_body_bytes: int = Field(ge=1024)
    max_entities_in_prompt: int = Field(ge=0, le=100)
    max_requests_in_flight: int = Field(ge=1, le=4096, description="more at once get 503 + Retry-After")
    retry_after_s: int = Field(ge=1, le=600, description="Retry-After of that 503")
    api_key_file: str | None = Field(
        description="a file holding the bearer token callers must send; null or empty = no auth"
    )
    experiences_per_agent: int = Field(ge=0, le=100, description="recent /experience events kept and shown")
    experience_agents: int = Field(ge=1, description="agents whose experiences are kept (least recent dropped)")
    fallback: FallbackSettings
    input: InputSettings
    prompt_budget_bytes: int = Field(
        ge=1024,
        description="UTF-8 bytes of system prompt + tools + user prompt "
        "per agent (>= its tokens for byte-level BPE tokenizers)",
    )
    published_host: str | None = Field(
        description="where the service is reachable from outside its container (compose: ARENA_BIND_ADDRESS); None = host"
    )
    debug: DebugSettings


class RecipeSpec(_Model):
    """One crafting recipe, as Agent Arena's foraging scene defines it (scripts/foraging.gd RECIPES)."""

    inputs: dict[str, int]
    station: str


class SceneSettings(_Model):
    """An Agent Arena scene: which tools its agents get, its prompt, recipes and bounds (configs/scene/*.yaml)."""

    name: str
    tools: list[str] = Field(min_length=1, description="tool names from the tool set, offered in this order")
    system_prompt: str = Field(min_length=1)
    recipes: dict[str, RecipeSpec] = Field(description="used when the game sends no custom.recipes")
    coordinate_limit: float = Field(gt=0.0, description="move_to coordinates stay within +-this")
    collect_radius: float | None = Field(
        gt=0.0, description="collect is offered for resources this close (the game's range); null: all in sight"
    )
    craft_radius: float | None = Field(
        gt=0.0,
        description="craft_item is offered for recipes whose station is this close and whose inputs are held; null: all known",
    )
    move_targets: Literal["named", "coordinates"] = Field(
        description="named: move_to takes the name of something in sight (the agent sends its position); "
        "coordinates: bounded integer coordinates from the model"
    )
    hazard_radius: float = Field(ge=0.0, description="hazards damage within this; named moves are routed around it")


class Settings(_Model):
    """Everything, validated; built once at start by :func:`load_settings`."""

    backend: BackendSettings
    profile: ProfileSettings
    tools: ToolSetSettings
    scene: SceneSettings
    agent: AgentSettings

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> Settings:
        names = [tool.name for tool in self.tools.tools]
        try:
            check_tool_choice(self.backend.function_calling.tool_choice, names)
        except ValueError as exc:
            raise ValueError(f"backend.function_calling.tool_choice: {exc}") from None
        unknown = [name for name in self.scene.tools if name not in names]
        if unknown:
            raise ValueError(f"scene.tools names {unknown}, not in the tool set {self.tools.name!r}: {sorted(names)}")
        return self


def default_config_dir() -> Path:
    """The configs folder: $ARENA_CONFIG_DIR, else the repository's ``configs/``."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV]).resolve()
    return CHECKOUT / "configs"


def available_options(group: str, config_dir: Path | None = None) -> list[str]:
    """Names of the YAML files in one config group, e.g. ``available_options("profile")``."""
    folder = (config_dir or default_config_dir()) / group
    return sorted(path.stem for path in folder.glob("*.yaml"))


_WARNED: set[str] = set()  # the deprecation line once per process and name


def env_overrides(name: str = OVERRIDES_ENV, env: Mapping[str, str] | None = None) -> list[str]:
    """A service's overrides from the environment (shell-quoted): $AGENT_OVERRIDES, or ``VLLM_OVERRIDES_ENV``
    for the vLLM server; ``env`` (default: this process's) may be a compose service's environment. The old
    $ARENA_OVERRIDES still works where the service's own is unset."""
    env = os.environ if env is None else env
    if not env.get(name) and env.get(LEGACY_OVERRIDES_ENV):
        if name not in _WARNED:
            _WARNED.add(name)
            logging.getLogger(__name__).warning(
                "%s is deprecated: set %s (the same name on the host and in the container)", LEGACY_OVERRIDES_ENV, name
            )
        return shlex.split(env[LEGACY_OVERRIDES_ENV])
    return shlex.split(env.get(name) or "")


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
        given = error.get("input")
        value = repr(given)
        if "api_key" in key:
            value = "<secret>"
        elif isinstance(given, dict):
            value = "{...}"
        elif isinstance(given, list) and given:
            value = "[...]"
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
