"""The entrypoint plans memory before any download, on cards as nvidia-smi really reports them (a stand-in
nvidia-smi on PATH, no model on disk): it fits gpu_memory_utilization to the free VRAM, refuses with the
fix named when the weights and one max_model_len sequence cannot fit, and `auto` picks by free memory.
The four cards of issue 20's table are the four ``test_row_*`` tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arena_vllm.config import default_config_dir, load_settings
from ops import cli, run_vllm_server
from ops.engine import gpus as smi
from ops.engine.fit import fit_memory, planner_settings
from ops.engine.gpus import GpuMemory
from ops.engine.model_config import shipped_config
from ops.engine.planner import ModelShape
from ops.engine.server import ServerPlan, build_plan, describe
from ops.errors import ProfileRefused
from tests.support.gpu_cases import PROFILE_MODELS

GIB_MIB = 1024
NA = "[N/A]"


@pytest.fixture
def gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in nvidia-smi on PATH reporting one card; no model anywhere on disk, the hub off."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi_file = bin_dir / "nvidia-smi"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLLM_LOCAL_MODEL_DIR", str(tmp_path / "no-local-model"))
    monkeypatch.setenv("HF_TOKEN_FILE", str(tmp_path / "no-token"))
    for var in ("VLLM_MODEL", "VLLM_OVERRIDES", "ARENA_OVERRIDES", "VLLM_PROFILE", "VLLM_API_KEY", "VLLM_API_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)

    def card(total_mib: int, used_mib: int, reserved: int | str = 0, apps: str = "", old_driver: bool = False) -> None:
        """nvidia-smi's answer for one card; ``reserved`` may be "[N/A]" as virtual and consumer GPUs answer."""
        free = total_mib - (reserved if isinstance(reserved, int) else 0) - used_mib
        gpu_line = f"{total_mib}, {free}" if old_driver else f"{total_mib}, {reserved}, {free}"
        reserved_case = (
            '  *memory.reserved*) echo "Field \\"memory.reserved\\" is not a valid field to query."; exit 2;;\n'
            if old_driver
            else ""
        )
        smi_file.write_text(
            "#!/bin/sh\n"
            'for a in "$@"; do case "$a" in\n' + reserved_case + f'  --query-gpu=*) echo "{gpu_line}";;\n'
            f'  --query-compute-apps=*) printf "{apps}";;\n'
            "esac; done\n"
        )
        smi_file.chmod(0o755)

    return card


def util_of(plan: ServerPlan) -> float:
    return float(plan.argv[plan.argv.index("--gpu-memory-utilization") + 1])


def dry_run(capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str]:
    """The entrypoint's --dry-run as a user runs it: its exit status and everything it printed."""
    try:
        run_vllm_server.main(["--dry-run", "--bind", "127.0.0.1"])
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err + (code if isinstance(code, str) else "")


# --- nvidia-smi, field by field -------------------------------------------------------------------


def test_reads_cuda_total_and_free_with_a_reserve_n_a_and_a_driver_refusing_the_field(gpu) -> None:
    gpu(81559, 1536, reserved=479)
    assert smi.gpu_memory() == [GpuMemory(81080, 81559 - 479 - 1536)]
    gpu(16380, 1536, reserved=NA)  # a card is a card: the unknown reserve counts as 0, and says so
    [card] = smi.gpu_memory()
    assert (card.total_mib, card.free_mib) == (16380, 16380 - 1536) and "[N/A]" in card.note and "as 0" in card.note
    gpu(8188, 1536, old_driver=True)  # "Field memory.reserved is not a valid field": asked again without it
    [card] = smi.gpu_memory()
    assert (card.total_mib, card.free_mib) == (8188, 8188 - 1536) and "does not answer memory.reserved" in card.note


def test_a_line_without_total_or_free_is_no_card_and_no_nvidia_smi_is_no_gpu(gpu, monkeypatch) -> None:
    assert smi.parse_memory_line("[N/A], 0, 7000", smi.MEMORY_FIELDS) is None
    assert smi.parse_memory_line("8188, 0, [N/A]", smi.MEMORY_FIELDS) is None
    monkeypatch.setenv("PATH", "/nonexistent")
    assert smi.gpu_memory() == [] and smi.gpu_vram_gib() is None and smi.gpu_processes() == []


# --- issue 20's table: each card with no model on disk ---------------------------------------------


def test_row_1_16gb_reserve_n_a_auto_picks_gpu_16gb_fitted(gpu, monkeypatch, capsys) -> None:
    gpu(16380, 1536, reserved=NA)
    monkeypatch.setenv("VLLM_PROFILE", "auto")
    code, out = dry_run(capsys)
    assert code == 0 and "profile gpu-16gb (VLLM_PROFILE=auto), device gpu" in out, out
    assert "memory: nvidia-smi: memory.reserved answered '[N/A]': counted as 0" in out and "lowered to 0.8437" in out
    assert "plan (shipped Qwen--Qwen2.5-7B-Instruct-AWQ.json" in out  # planned before any download


def test_row_2_8gb_reserve_n_a_gpu_8gb_lowered_to_fit(gpu, monkeypatch) -> None:
    gpu(8188, 1024, reserved=NA)
    monkeypatch.setenv("VLLM_PROFILE", "gpu-8gb")
    plan = build_plan([], "127.0.0.1", 8000, launcher=["vllm", "serve"])
    assert util_of(plan) * 8188 <= 8188 - 1024 - 1024  # free less the headroom, not 0.9 x 8188 = 7369 MiB
    assert util_of(plan) == pytest.approx((8188 - 1024 - 1024) / 8188, abs=1e-4)
    assert any("seats at 8,192 tokens" in note for note in plan.memory_notes)


def test_row_3_24gb_almost_all_held_auto_refuses_before_the_download(gpu, monkeypatch, capsys) -> None:
    gpu(24564, 23552, apps="4242, /usr/bin/python3, 23000\\n")
    monkeypatch.setenv("VLLM_PROFILE", "auto")
    code, out = dry_run(capsys)
    assert isinstance(code, str) and code.count("\n") == 0 and "Traceback" not in out  # one line
    assert code.startswith("run_vllm_server: no GPU profile starts in the 0.99 GiB of VRAM free now")
    for needed in (
        "gpu-24gb needs",
        "gpu-16gb needs",
        "gpu-8gb needs",
        "/usr/bin/python3 (pid 4242, 23000 MiB)",
        "VLLM_PROFILE=cpu",
    ):
        assert needed in code, code
    assert "exec" not in out


def test_row_4_8gb_7gb_held_gpu_8gb_refused_naming_need_free_holder_and_fix(gpu, monkeypatch, capsys) -> None:
    gpu(8188, 7168, apps="77, firefox, 7000\\n")
    monkeypatch.setenv("VLLM_PROFILE", "gpu-8gb")
    code, out = dry_run(capsys)
    assert isinstance(code, str) and code.count("\n") == 0 and "exec" not in out
    assert code.startswith("run_vllm_server: profile gpu-8gb: Qwen/Qwen2.5-1.5B-Instruct needs ")
    assert "GiB of 8.00 GiB VRAM is free" in code and "firefox (pid 77, 7000 MiB)" in code
    assert "a smaller profile" in code


# --- the rest of the fit ---------------------------------------------------------------------------


def test_idle_card_keeps_the_profile_util(gpu, monkeypatch) -> None:
    gpu(24 * GIB_MIB, 300)
    monkeypatch.setenv("VLLM_PROFILE", "gpu-24gb")
    plan = build_plan([], "127.0.0.1", 8000)
    assert util_of(plan) == 0.92 and any("fits the" in note for note in plan.memory_notes)


def test_desktop_holding_vram_lowers_util_and_says_why(gpu, monkeypatch) -> None:
    gpu(8 * GIB_MIB, 1536)  # an 8 GB card with a desktop holding 1.5 GiB
    monkeypatch.setenv("VLLM_PROFILE", "gpu-8gb")
    plan = build_plan([], "127.0.0.1", 8000)
    assert util_of(plan) == pytest.approx((8 * GIB_MIB - 1536 - 1024) / (8 * GIB_MIB), abs=1e-4)
    text = describe(plan, "gpu-8gb")
    assert "lowered to" in text and "profile.vram_headroom_gib" in text and "seats at 8,192 tokens" in text


def test_a_shorter_context_is_named_when_it_would_fit(gpu, monkeypatch) -> None:
    gpu(8 * GIB_MIB, 3330)  # weights, activation and headroom fit; one 8,192-token sequence does not
    monkeypatch.setenv("VLLM_PROFILE", "gpu-8gb")
    with pytest.raises(ProfileRefused, match=r"profile.max_model_len=\d+"):
        build_plan([], "127.0.0.1", 8000)


def test_auto_picks_by_free_memory_not_total(gpu, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_PROFILE", "auto")
    gpu(24 * GIB_MIB, 400)
    assert build_plan([], "127.0.0.1", 8000).profile.name == "gpu-24gb"
    gpu(24 * GIB_MIB, 8 * GIB_MIB)  # 16 GiB free: the 7B bf16 cannot hold one 32k sequence, AWQ can
    assert build_plan([], "127.0.0.1", 8000).profile.name == "gpu-16gb"


def test_a_model_with_no_config_anywhere_is_fitted_unchecked_and_says_so(gpu, monkeypatch) -> None:
    gpu(24 * GIB_MIB, 400)
    monkeypatch.setenv("VLLM_PROFILE", "gpu-24gb")
    monkeypatch.setenv("VLLM_MODEL", "org/not-shipped")
    plan = build_plan([], "127.0.0.1", 8000)
    [unchecked] = [note for note in plan.memory_notes if "UNCHECKED" in note]
    assert "HF_HUB_OFFLINE is set" in unchecked and "only after downloading" in unchecked


def test_the_gpu_image_starts_vllm_serve_and_the_cpu_image_the_module_with_the_same_flags(gpu, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_PROFILE", "cpu")
    serve = build_plan([], "127.0.0.1", 8000, launcher=["/usr/bin/vllm", "serve"])
    module = build_plan([], "127.0.0.1", 8000, launcher=["python3", "-m", "vllm.entrypoints.openai.api_server"])
    assert serve.argv[:3] == ["/usr/bin/vllm", "serve", serve.model]
    assert module.argv[:5] == ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", module.model]
    assert serve.argv[3:] == module.argv[5:]
    assert "exec vllm serve Qwen/" in describe(serve, "cpu")


def test_every_profile_reaches_the_planner_through_one_mapping() -> None:
    """A GPU profile's kv_cache_memory_bytes is passed to vLLM (engine_flags), so the fit plans with it too."""
    profile = load_settings(["profile=gpu-8gb", "profile.kv_cache_memory_bytes=1G"]).profile
    assert planner_settings(profile)["kv_cache_memory_bytes"] == 2**30
    decision = fit_memory(profile, [GpuMemory(8 * GIB_MIB, 8 * GIB_MIB)], PROFILE_MODELS[profile.model], lambda: [])
    assert decision.plan is not None and decision.plan.kv_bytes == 2**30


def test_shipped_configs_are_the_shapes_the_planner_was_measured_on() -> None:
    for repo, measured in PROFILE_MODELS.items():
        found = shipped_config(repo)
        assert found is not None and repo in found.source
        assert ModelShape.from_config(found.config) == ModelShape.from_config(measured)


def test_ops_plan_prints_the_split_offline_from_the_shipped_config(gpu, capsys) -> None:
    gpu(24 * GIB_MIB, 400)
    with pytest.raises(SystemExit) as done:
        cli.main(["plan", "--profile", "gpu-8gb", "--vram", "8", "--free", "6.5"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for label in (
        "shipped Qwen--Qwen2.5-1.5B-Instruct.json",
        "weights",
        "activation",
        "CUDA graphs",
        "28,672 B",
        "KV tokens",
        "max concurrency at 8,192 tokens",
        "fits",
        "lowered to 0.6875",
    ):
        assert label in out, out
    # within 5% of what vLLM logged for this card and budget, the number the profile's comment records
    comment = (default_config_dir() / "profile" / "gpu-8gb.yaml").read_text()
    measured = int(re.search(r"KV cache [\d.]+ GiB = ([\d,]+) tokens", comment).group(1).replace(",", ""))
    planned = int(re.search(r"KV tokens\s+([\d,]+)", out).group(1).replace(",", ""))
    assert measured == 68_448 and abs(planned / measured - 1) < 0.05, (planned, measured)
