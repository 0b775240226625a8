"""VLLMBackendConfig: the seed's constructor, clear validation errors, and building from the Hydra settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arena_vllm.backends import VLLMBackendConfig
from arena_vllm.config import OVERRIDES_ENV, load_settings

pytestmark = pytest.mark.usefixtures("clean_environment")  # no VLLM_* or ARENA_* from the shell


def test_seed_constructor_keeps_working() -> None:
    config = VLLMBackendConfig(
        model_path="Qwen/Qwen2.5-0.5B-Instruct", api_base="http://localhost:8000/v1", temperature=0.7, max_tokens=256
    )
    assert (config.model_path, config.api_base, config.temperature, config.max_tokens) == (
        "Qwen/Qwen2.5-0.5B-Instruct",
        "http://localhost:8000/v1",
        0.7,
        256,
    )


def test_omitted_values_come_from_the_backend_yaml() -> None:
    config, settings = VLLMBackendConfig(), load_settings().backend
    assert config == VLLMBackendConfig.from_settings(settings)
    assert (config.timeout_s, config.max_retries, config.top_p, config.tool_choice) == (
        settings.timeout_s,
        settings.max_retries,
        settings.top_p,
        settings.function_calling.tool_choice,
    )
    assert config.timeout_s < 600 and config.max_retries < 2  # never the OpenAI SDK's defaults


def test_given_values_win_over_the_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDES_ENV, "backend.top_p=0.5")
    config = VLLMBackendConfig(temperature=0.1)
    assert (config.temperature, config.top_p) == (0.1, 0.5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 2.5, "less than or equal to 2"),
        ("temperature", -0.1, "greater than or equal to 0"),
        ("top_p", 0.0, "greater than 0"),
        ("max_tokens", 0, "greater than or equal to 1"),
        ("timeout_s", 0, "greater than 0"),
        ("timeout_s", 601, "less than or equal to 600"),
        ("max_retries", 11, "less than or equal to 10"),
        ("api_base", "localhost:8000/v1", "must be an http:// or https:// URL"),
        ("api_base", "ftp://example.com/v1", "must be an http:// or https:// URL"),
        ("api_base", "http://", "must be an http:// or https:// URL"),
        ("function_calling_format", "xml", "'openai', 'schema' or 'prompt'"),
        ("tool_choice", "none", "asks for no tool call"),
        ("tool_choice", "", "not empty"),
        ("temprature", 0.2, "Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_field_and_the_rule(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VLLMBackendConfig(**{field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,) and message in error["msg"]


def test_assignment_is_validated_too() -> None:
    config = VLLMBackendConfig()
    with pytest.raises(ValidationError):
        config.temperature = 9.0


def test_api_key_is_secret_and_never_printed() -> None:
    config = VLLMBackendConfig(api_key="sk-very-secret")
    assert config.api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(config) and "sk-very-secret" not in str(config.model_dump())


@pytest.mark.parametrize(
    ("api_base", "root"),
    [
        ("http://h:8000/v1", "http://h:8000"),
        ("http://h:8000/v1/", "http://h:8000"),
        ("https://proxy/vllm/v1", "https://proxy/vllm"),
        ("http://h:8000", "http://h:8000"),
    ],
)
def test_server_root_is_where_health_lives(api_base: str, root: str) -> None:
    assert VLLMBackendConfig(api_base=api_base).server_root == root


def test_from_settings_maps_every_field() -> None:
    settings = load_settings(
        [
            "backend.model=tiny",
            "backend.temperature=0.2",
            "backend.top_p=0.5",
            "backend.max_tokens=64",
            "backend.timeout_s=3",
            "backend.max_retries=0",
            "backend.api_key=k",
            "backend.function_calling.tool_choice=required",
        ]
    )
    config = VLLMBackendConfig.from_settings(settings.backend)
    assert config.model_dump(exclude={"api_key"}) == {
        "model_path": "tiny",
        "api_base": "http://localhost:8000/v1",
        "temperature": 0.2,
        "top_p": 0.5,
        "max_tokens": 64,
        "timeout_s": 3.0,
        "max_retries": 0,
        "tool_choice": "required",
        "function_calling_format": "schema",
    }
    assert config.api_key.get_secret_value() == "k"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], "schema"),
        (["backend.function_calling.format=openai"], "openai"),
        (["backend.function_calling.format=prompt"], "prompt"),
        (["backend.function_calling.enabled=false"], "prompt"),
    ],
    ids=["default", "format-openai", "format-prompt", "disabled"],
)
def test_disabled_function_calling_means_prompt_based(overrides: list[str], expected: str) -> None:
    config = VLLMBackendConfig.from_settings(load_settings(overrides).backend)
    assert config.function_calling_format == expected


def test_from_hydra_applies_environment_then_explicit_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDES_ENV, "backend.temperature=0.3 backend.max_tokens=99")
    config = VLLMBackendConfig.from_hydra(overrides=["backend.temperature=0.1"])
    assert (config.temperature, config.max_tokens) == (0.1, 99)


def test_from_hydra_reads_the_api_base_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_BASE", "http://vllm:8000/v1")
    assert VLLMBackendConfig.from_hydra().api_base == "http://vllm:8000/v1"


def test_validation_reads_no_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults are filled by the constructor only: validating and assigning never compose Hydra."""
    config = VLLMBackendConfig(temperature=0.1)
    full = config.model_dump()
    monkeypatch.setattr("arena_vllm.backends.vllm_config.load_settings", lambda *_: pytest.fail("composed"))
    assert VLLMBackendConfig.model_validate(full) == config
    config.temperature = 0.2
    assert VLLMBackendConfig(**full).temperature == 0.1
