"""`docker compose config` of the GPU stack and of the CPU switch: what must be there, and safe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from arena_vllm.config import load_settings
from ops.compose import REPO, compose_files

#: scripts/base_scene_controller.gd ``http_request.timeout = 30.0`` (and godot/src/agent_arena.cpp): the game's wait.
GAME_HTTP_TIMEOUT_S = 30.0
#: The game's shortest caller: scripts/tests/test_observation_loop.gd sets `http_request.timeout = 10.0`.
GAME_TEST_LOOP_TIMEOUT_S = 10.0
#: Time to answer once the deadline passed (fallbacks are computed in microseconds; HTTP and JSON in ms).
ANSWER_MARGIN_S = 1.0
GPU_FILES = compose_files("gpu")
CPU_FILES = compose_files("cpu")


def compose_config(files: list[str], **env: str) -> dict[str, Any]:
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI (with the compose plugin) is needed; .ci/run installs it")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "AGENT_", "ARENA_", "HF_"))}
    args = [arg for file in files for arg in ("-f", file)]
    result = subprocess.run(
        ["docker", "compose", *args, "config", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**clean_env, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gpu_stack_reserves_gpus_keeps_secrets_and_checks_health() -> None:
    vllm = compose_config(GPU_FILES)["services"]["vllm"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]  # -1 = all
    assert {secret["source"] for secret in vllm["secrets"]} == {"hf_token", "vllm_api_key"}
    assert "python3" in vllm["healthcheck"]["test"] and vllm["healthcheck"]["start_period"]
    assert vllm["build"]["target"] == "gpu"
    assert "/root/.cache/huggingface" in {volume["target"] for volume in vllm["volumes"]}


def test_gpu_count_comes_from_the_environment() -> None:
    vllm = compose_config(GPU_FILES, VLLM_GPU_COUNT="2")["services"]["vllm"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2


@pytest.mark.parametrize("files", [GPU_FILES, CPU_FILES], ids=["gpu", "cpu"])
def test_every_published_port_binds_loopback_by_default(files: list[str]) -> None:
    services = compose_config(files)["services"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port["host_ip"] == "127.0.0.1" for port in published)


def test_ports_open_only_when_the_user_opts_out() -> None:
    services = compose_config(GPU_FILES, ARENA_BIND_ADDRESS="0.0.0.0")["services"]
    assert {port["host_ip"] for service in services.values() for port in service["ports"]} == {"0.0.0.0"}


@pytest.mark.parametrize("files", [GPU_FILES, CPU_FILES], ids=["gpu", "cpu"])
def test_vllm_runs_under_an_init_that_reaps_its_warm_up(files: list[str]) -> None:
    assert compose_config(files)["services"]["vllm"]["init"] is True


def test_the_agent_never_gets_the_hf_token() -> None:
    agent = compose_config(GPU_FILES)["services"]["agent"]
    assert {secret["source"] for secret in agent["secrets"]} == {"vllm_api_key", "agent_api_key"}
    assert not any("HF_TOKEN" in key for key in agent["environment"])


def test_cpu_switch_builds_the_cpu_target_without_gpu_reservation() -> None:
    services = compose_config(CPU_FILES)["services"]
    assert services["vllm"]["build"]["target"] == "cpu"
    assert "deploy" not in services["vllm"]
    assert services["vllm"]["environment"]["VLLM_PROFILE"] == "cpu"
    assert services["agent"]["depends_on"]["vllm"]["condition"] == "service_healthy"


def test_cpu_switch_gives_the_agent_its_cpu_settings_and_the_users_overrides_win() -> None:
    agent = compose_config(CPU_FILES, AGENT_OVERRIDES="scene=plain agent.tick_deadline_s=12")["services"]["agent"]
    overrides = agent["environment"]["AGENT_OVERRIDES"].split()
    assert overrides == ["agent=cpu", "scene=plain", "agent.tick_deadline_s=12"]
    assert load_settings(overrides).agent.tick_deadline_s == 12
    deadline = load_settings(["agent=cpu"]).agent.tick_deadline_s
    assert load_settings().agent.tick_deadline_s < deadline < GAME_HTTP_TIMEOUT_S  # the game stops waiting at 30 s
    assert compose_config(GPU_FILES)["services"]["agent"]["environment"]["AGENT_OVERRIDES"] == ""


def test_the_default_deadline_leaves_time_to_answer_before_the_game_stops_waiting() -> None:
    assert load_settings().agent.tick_deadline_s + ANSWER_MARGIN_S < GAME_TEST_LOOP_TIMEOUT_S


@pytest.mark.parametrize("files", [GPU_FILES, CPU_FILES], ids=["gpu", "cpu"])
def test_both_services_are_hardened(files: list[str]) -> None:
    """What the stack test reads back from ``docker inspect``, here as compose resolves it."""
    services = compose_config(files)["services"]
    for name in ("vllm", "agent"):
        service = services[name]
        assert service["cap_drop"] == ["ALL"] and not service.get("cap_add"), name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}, name
        assert int(service["mem_limit"]) > 0 and service["pids_limit"] > 0, name
    assert services["agent"]["read_only"] is True and services["agent"]["tmpfs"] == ["/tmp:size=16m,mode=1777"]
    assert services["vllm"]["environment"]["VLLM_NO_USAGE_STATS"] == "1"
    assert services["vllm"]["environment"]["DO_NOT_TRACK"] == "1"


def test_cpu_switch_uses_its_own_shm_instead_of_the_hosts_ipc() -> None:
    gpu, cpu = compose_config(GPU_FILES)["services"]["vllm"], compose_config(CPU_FILES)["services"]["vllm"]
    assert gpu["ipc"] == "host"  # NCCL (tensor parallel) needs it
    assert cpu["ipc"] == "private" and int(cpu["shm_size"]) == 256 * 2**20


def test_limits_and_usage_stats_come_from_variables() -> None:
    services = compose_config(
        CPU_FILES, VLLM_MEM_LIMIT="3g", AGENT_PIDS_LIMIT="64", VLLM_NO_USAGE_STATS="0", ARENA_LOG_MAX_SIZE="1m"
    )["services"]
    assert int(services["vllm"]["mem_limit"]) == 3 * 2**30
    assert services["agent"]["pids_limit"] == 64
    assert services["vllm"]["environment"]["VLLM_NO_USAGE_STATS"] == "0"
    assert services["vllm"]["environment"]["DO_NOT_TRACK"] == "0"
    assert services["agent"]["logging"]["options"]["max-size"] == "1m"
