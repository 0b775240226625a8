"""ops.compose: the stack chosen for a machine, compose commands, and the model the server will pick."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from arena_vllm.config import ConfigError, available_options, load_settings
from ops import compose
from ops.engine.gpus import GpuMemory
from ops.errors import ProfileRefused


@functools.cache
def gpu_profiles() -> dict[str, float]:
    """GPU profile name -> its min_vram_gib, read from configs/ (values are never copied here)."""
    found = {}
    for name in available_options("profile"):
        profile = load_settings([f"profile={name}"]).profile
        if profile.device == "gpu":
            found[name] = profile.min_vram_gib
    return found


def idle_card(vram_gib: float) -> list[GpuMemory]:
    """One card of this size with all of it free."""
    return [GpuMemory(vram_gib * 1024, vram_gib * 1024)]


def config_with(environment: dict[str, str], models_source: Path | None = None) -> dict[str, Any]:
    """The slice of a resolved compose config that select_model reads."""
    volumes = [{"type": "volume", "source": "hf-cache", "target": "/root/.cache/huggingface"}]
    if models_source is not None:
        volumes.append({"type": "bind", "source": str(models_source), "target": "/models", "read_only": True})
    return {"name": "arena-vllm", "services": {"vllm": {"environment": environment, "volumes": volumes}}}


@pytest.mark.parametrize(
    ("forced", "runtimes", "vram", "expected"),
    [
        (None, {"runc", "nvidia"}, 23.6, "gpu"),
        (None, {"runc"}, 23.6, "cpu"),  # a card the engine cannot hand to containers
        (None, {"runc", "nvidia"}, None, "cpu"),  # runtime registered, driver broken
        (None, set(), None, "cpu"),
        ("gpu", set(), None, "gpu"),  # the user knows better
        ("cpu", {"nvidia"}, 80.0, "cpu"),
    ],
    ids=["gpu", "no-runtime", "no-driver", "nothing", "forced-gpu", "forced-cpu"],
)
def test_choose_device(forced: str | None, runtimes: set[str], vram: float | None, expected: str) -> None:
    assert compose.choose_device(forced, runtimes, vram) == expected


def test_cpu_stack_adds_the_override_file_and_gpu_uses_the_base_only() -> None:
    assert compose.compose_cmd("cpu", "ps") == [
        "docker",
        "compose",
        "-f",
        "docker-compose.yml",
        "-f",
        "docker-compose.cpu.yml",
        "ps",
    ]
    assert compose.compose_cmd("gpu", "ps") == ["docker", "compose", "-f", "docker-compose.yml", "ps"]


@pytest.mark.parametrize("name", sorted(gpu_profiles()))
def test_auto_picks_each_gpu_profile_at_its_own_minimum_vram(name: str) -> None:
    selection = compose.select_model(config_with({"VLLM_PROFILE": "auto"}), idle_card(gpu_profiles()[name]))
    assert (selection.profile, selection.profile_device) == (name, "gpu")
    assert selection.model == load_settings([f"profile={name}"]).profile.model


def test_auto_without_a_gpu_is_cpu_and_a_too_small_gpu_is_an_error() -> None:
    assert compose.select_model(config_with({"VLLM_PROFILE": "auto"}), []).profile_device == "cpu"
    with pytest.raises(ProfileRefused, match="no GPU profile is made for"):
        compose.select_model(config_with({"VLLM_PROFILE": "auto"}), idle_card(min(gpu_profiles().values()) / 2))


def test_vllm_model_wins_then_a_local_folder_then_the_profile(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    chosen = compose.select_model(config_with({"VLLM_PROFILE": "cpu", "VLLM_MODEL": "org/name"}, tmp_path), [])
    assert chosen.model == "org/name" and chosen.local_dir is None
    chosen = compose.select_model(config_with({"VLLM_PROFILE": "cpu", "VLLM_MODEL": ""}, tmp_path), [])
    assert chosen.local_dir == tmp_path
    empty = tmp_path / "empty"
    empty.mkdir()
    chosen = compose.select_model(config_with({"VLLM_PROFILE": "cpu"}, empty), [])
    assert chosen.model == load_settings(["profile=cpu"]).profile.model


def test_overrides_reach_the_profile_choice() -> None:
    env = {"VLLM_PROFILE": "cpu", "VLLM_OVERRIDES": "profile.model=org/other"}
    assert compose.select_model(config_with(env), []).model == "org/other"
    legacy = {"VLLM_PROFILE": "cpu", "ARENA_OVERRIDES": "profile.model=org/old"}  # a compose file from before
    assert compose.select_model(config_with(legacy), []).model == "org/old"


def test_profile_device_reads_configs() -> None:
    for name in available_options("profile"):
        expected = "gpu" if load_settings([f"profile={name}"]).profile.device == "gpu" else "cpu"
        assert compose.profile_device(name) == expected
    with pytest.raises(ConfigError):
        compose.profile_device("auto")
