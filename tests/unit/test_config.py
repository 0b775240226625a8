"""arena_vllm.config: Hydra composes configs/, pydantic validates, and every bad value is named with its key.

The corpus of bad settings (each refused with the key named) is in test_bad_input.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from arena_vllm import config
from arena_vllm.config import (
    CONFIG_DIR_ENV,
    LEGACY_OVERRIDES_ENV,
    OVERRIDES_ENV,
    VLLM_OVERRIDES_ENV,
    ConfigError,
    available_options,
    default_config_dir,
    env_overrides,
    load_settings,
)

pytestmark = pytest.mark.usefixtures("clean_environment")  # no VLLM_*, AGENT_* or ARENA_* from the shell


def test_defaults_compose_cpu_profile_sdk_tools_foraging_scene_and_local_backend() -> None:
    settings = load_settings()
    assert settings.profile.name == "cpu" and settings.profile.device == "cpu"
    assert [tool.name for tool in settings.tools.tools][:5] == ["move_to", "collect", "craft_item", "explore", "idle"]
    assert settings.scene.name == "foraging" and sorted(settings.scene.recipes) == ["meal", "shelter", "torch"]
    assert settings.backend.api_base == "http://localhost:8000/v1"


def test_overrides_select_groups_and_set_keys() -> None:
    settings = load_settings(["profile=gpu-8gb", "backend.temperature=0.2"])
    assert settings.profile.name == "gpu-8gb" and settings.backend.temperature == 0.2


def test_every_profile_is_valid() -> None:
    for profile in available_options("profile"):
        assert load_settings([f"profile={profile}"]).profile.name == profile


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError, match=r"\(2 problem\(s\)\)"):
        load_settings(["backend.temperature=5", "backend.top_p=0"])


def test_api_key_is_secret_in_settings_and_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert settings.backend.api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        load_settings(["backend.api_key=[1]"])
    assert "backend.api_key = <secret>" in str(caught.value)


def test_api_key_file_wins_over_api_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    settings = load_settings([f"backend.api_key_file={key_file}", "backend.api_key=other"])
    assert settings.backend.api_key.get_secret_value() == "sk-from-file"
    with pytest.raises(ConfigError, match="backend.api_key_file: cannot read"):
        load_settings([f"backend.api_key_file={tmp_path / 'missing'}"])


def test_environment_interpolation_builds_the_api_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_HOST", "vllm")
    monkeypatch.setenv("VLLM_PORT", "8001")
    assert load_settings().backend.api_base == "http://vllm:8001/v1"
    monkeypatch.setenv("VLLM_API_BASE", "https://gateway.example/v1/")
    assert load_settings().backend.api_base == "https://gateway.example/v1"


def test_arena_overrides_are_shell_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDES_ENV, "profile=gpu-24gb 'scene.system_prompt=Be quick.' agent.port=5001")
    assert env_overrides() == ["profile=gpu-24gb", "scene.system_prompt=Be quick.", "agent.port=5001"]
    settings = load_settings(env_overrides())
    assert (settings.profile.name, settings.scene.system_prompt, settings.agent.port) == ("gpu-24gb", "Be quick.", 5001)


def test_arena_overrides_unset_means_none() -> None:
    assert env_overrides() == []


def test_each_service_reads_its_own_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDES_ENV, "scene=plain")
    monkeypatch.setenv(VLLM_OVERRIDES_ENV, "profile.max_model_len=4096")
    assert (OVERRIDES_ENV, VLLM_OVERRIDES_ENV) == ("AGENT_OVERRIDES", "VLLM_OVERRIDES")  # the names users set
    assert env_overrides() == ["scene=plain"]
    assert env_overrides(VLLM_OVERRIDES_ENV) == ["profile.max_model_len=4096"]


def test_the_old_name_still_works_with_one_deprecation_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(LEGACY_OVERRIDES_ENV, "agent.port=5001")
    monkeypatch.setattr(config, "_WARNED", set())
    with caplog.at_level(logging.WARNING):
        assert env_overrides() == env_overrides() == ["agent.port=5001"]
    assert [r.getMessage() for r in caplog.records] == [
        "ARENA_OVERRIDES is deprecated: set AGENT_OVERRIDES (the same name on the host and in the container)"
    ]
    monkeypatch.setenv(OVERRIDES_ENV, "agent.port=5002")  # the service's own name wins
    assert env_overrides() == ["agent.port=5002"]


def test_config_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    assert default_config_dir() == tmp_path.resolve()
    with pytest.raises(ConfigError, match=f"no config.yaml in {tmp_path}; set {CONFIG_DIR_ENV}"):
        load_settings()
