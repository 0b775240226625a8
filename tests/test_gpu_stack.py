"""The GPU stack (official vLLM image, GPU reservation) on a GPU runner: the profile the entrypoint picks for
this card and its free memory, the memory fit it logs, a valid decision, and the planner against vLLM's
logged KV cache size."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import requests

from arena_vllm.config import load_settings
from ops.engine.fit import choose_profile, fit_memory
from ops.engine.gpus import gpu_memory
from ops.engine.planner import Card, ModelShape, parse_size, plan_memory
from tests.support.gpu_cases import TINY_CONFIG
from tests.support.stack import ENGINE_OVERRIDES, start_stack


def gpu_missing_reason() -> str | None:
    """Why the GPU stack cannot run here, or None when it can."""
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi"], capture_output=True).returncode != 0:
        return "needs an NVIDIA GPU (nvidia-smi finds none here)"
    runtimes = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True)
    if "nvidia" not in runtimes.stdout:
        return "needs the NVIDIA Container Toolkit registered with Docker (no 'nvidia' runtime)"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(gpu_missing_reason() is not None, reason=gpu_missing_reason() or "")
def test_gpu_stack_picks_by_free_memory_fits_and_decides(tmp_path: Path) -> None:
    overrides = ENGINE_OVERRIDES.split()
    # What the entrypoint should decide, from this card's memory before the stack takes any.
    gpus = gpu_memory()
    tiny = TINY_CONFIG
    profile, decision = choose_profile("auto", overrides, gpus, lambda candidate: fit_memory(candidate, gpus, tiny))
    expected = profile.name

    with start_stack(tmp_path, "gpu") as stack:
        logs = stack.compose_cmd("logs", "--no-color", "vllm").stdout
        assert f"profile {expected} (VLLM_PROFILE=auto), device gpu" in logs, logs[-3000:]
        assert "run_vllm_server: memory: plan (" in logs, logs[-3000:]
        passed = float(re.search(r"--gpu-memory-utilization (\S+)", logs).group(1))
        assert passed == pytest.approx(decision.utilization, abs=0.01)  # free memory moves a little between reads

        shape = ModelShape.from_config(tiny, profile.dtype)
        predicted = plan_memory(
            shape,
            Card(int(gpus[0].total_mib * 2**20)),
            gpu_memory_utilization=passed,
            max_model_len=profile.max_model_len,
            max_num_seqs=profile.max_num_seqs,
            kv_cache_memory_bytes=parse_size(profile.kv_cache_memory_bytes),
        )
        logged = int(re.search(r"GPU KV cache size: ([\d,]+) tokens", logs).group(1).replace(",", ""))
        assert abs(logged / predicted.kv_tokens - 1) < 0.05, (logged, predicted.kv_tokens)

        decision_json = requests.post(
            f"{stack.agent_url}/observe",
            timeout=60,
            json={
                "agent_id": "gpu_1",
                "tick": 1,
                "position": [0, 0, 0],
                "nearby_resources": [{"name": "berry_1", "type": "berry", "position": [3, 0, 4], "distance": 5}],
            },
        ).json()
        tools = {tool.name: tool.parameters for tool in load_settings().tools.tools}
        assert decision_json["source"] == "native", decision_json
        jsonschema.validate(decision_json["params"], tools[decision_json["tool"]])
