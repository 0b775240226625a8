"""The entrypoint fits gpu_memory_utilization to the free VRAM a (faked) nvidia-smi reports, refuses with the
fix named when one max_model_len sequence cannot fit, and `auto` picks by free memory; `ops plan` prints it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena_vllm.config import ConfigError
from ops import cli
from ops import run_vllm_server as entry
from tests.support.gpu_cases import PROFILE_MODELS

GIB_MIB = 1024


@pytest.fixture
def gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Fake nvidia-smi on PATH reporting one card; the profiles' model configs in a fake HF cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    hub = tmp_path / "hub"
    for repo, config in PROFILE_MODELS.items():
        root = hub / f"models--{repo.replace('/', '--')}"
        (root / "snapshots" / "rev").mkdir(parents=True)
        (root / "snapshots" / "rev" / "config.json").write_text(json.dumps(config))
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text("rev")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(entry, "LOCAL_MODEL_DIR", tmp_path / "no-local-model")
    for var in ("VLLM_MODEL", "ARENA_OVERRIDES", "VLLM_PROFILE"):
        monkeypatch.delenv(var, raising=False)

    def card(total_mib: int, used_mib: int, reserved_mib: int = 0, apps: str = "", old_driver: bool = False) -> None:
        free = total_mib - reserved_mib - used_mib
        gpu_line = f"{total_mib}, {free}" if old_driver else f"{total_mib}, {reserved_mib}, {free}"
        reserved_case = ('  *memory.reserved*) echo "Field memory.reserved is not a valid field"; exit 2;;\n'
                         if old_driver else "")
        smi.write_text("#!/bin/sh\n"
                       'for a in "$@"; do case "$a" in\n' + reserved_case +
                       f'  --query-gpu=*) echo "{gpu_line}";;\n'
                       f'  --query-compute-apps=*) printf "{apps}";;\n'
                       "esac; done\n")
        smi.chmod(0o755)
    return card


def util_of(plan: entry.ServerPlan) -> float:
    return float(plan.argv[plan.argv.index("--gpu-memory-utilization") + 1])


def test_reads_cuda_total_and_free_with_and_without_the_reserved_field(gpu) -> None:
    gpu(81559, 1536, reserved_mib=479)
    assert entry.gpu_memory() == [entry.GpuMemory(81080, 81559 - 479 - 1536)]
    gpu(8188, 1536, old_driver=True)
    assert entry.gpu_memory() == [entry.GpuMemory(8188, 8188 - 1536)]


def test_idle_card_keeps_the_profile_util(gpu, monkeypatch) -> None:
    gpu(24 * GIB_MIB, 300)
    monkeypatch.setenv("VLLM_PROFILE", "gpu-24gb")
    plan = entry.build_plan([], "127.0.0.1", 8000)
    assert util_of(plan) == 0.92 and any("fits the" in note for note in plan.memory_notes)


def test_desktop_holding_vram_lowers_util_and_says_why(gpu, monkeypatch, capsys) -> None:
    gpu(8 * GIB_MIB, 1536)  # an 8 GB card with a desktop holding 1.5 GiB
    monkeypatch.setenv("VLLM_PROFILE", "gpu-8gb")
    plan = entry.build_plan([], "127.0.0.1", 8000)
    assert util_of(plan) == pytest.approx((8 * GIB_MIB - 1536 - 1024) / (8 * GIB_MIB), abs=1e-4)
    text = entry.describe(plan, "gpu-8gb")
    assert "lowered to" in text and "profile.vram_headroom_gib" in text and "seats at 8,192 tokens" in text


def test_refuses_before_loading_and_names_the_fixes(gpu, monkeypatch) -> None:
    gpu(8 * GIB_MIB, 4200, apps="4242, /usr/bin/firefox, 1800\\n")
    monkeypatch.setenv("VLLM_PROFILE", "gpu-8gb")
    with pytest.raises(ConfigError) as refused:
        entry.build_plan([], "127.0.0.1", 8000)
    message = str(refused.value)
    assert "cannot hold one 8,192-token sequence" in message
    assert "smaller profile" in message and "firefox (pid 4242, 1800 MiB)" in message
    gpu(8 * GIB_MIB, 3560)  # a little more free: a shorter context would fit, and the message says which
    with pytest.raises(ConfigError, match=r"profile.max_model_len=\d+"):
        entry.build_plan([], "127.0.0.1", 8000)


def test_auto_picks_by_free_memory_not_total(gpu, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_PROFILE", "auto")
    gpu(24 * GIB_MIB, 400)
    assert entry.build_plan([], "127.0.0.1", 8000).profile.name == "gpu-24gb"
    gpu(24 * GIB_MIB, 8 * GIB_MIB)  # 16 GiB free: the 7B bf16 cannot hold one 32k sequence, AWQ can
    assert entry.build_plan([], "127.0.0.1", 8000).profile.name == "gpu-16gb"
    gpu(24 * GIB_MIB, 21 * GIB_MIB)
    with pytest.raises(ConfigError, match="no GPU profile starts in the VRAM free now"):
        entry.build_plan([], "127.0.0.1", 8000)


def test_ops_plan_prints_the_split(gpu, capsys) -> None:
    gpu(24 * GIB_MIB, 400)
    with pytest.raises(SystemExit) as done:
        cli.main(["plan", "--profile", "gpu-8gb", "--vram", "7.92"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for label in ("weights", "activation", "CUDA graphs", "KV bytes per token", "28,672 B", "KV tokens",
                  "max concurrency at 8,192 tokens", "fits"):
        assert label in out, out
