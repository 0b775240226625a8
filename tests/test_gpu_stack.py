"""The GPU stack (official vLLM image, GPU reservation, profile picked from the VRAM) on a GPU runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import requests

from arena_vllm.config import load_settings
from tests.support.stack import start_stack


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
def test_gpu_stack_picks_a_gpu_profile_and_decides(tmp_path: Path) -> None:
    with start_stack(tmp_path, "gpu") as stack:
        logs = stack.compose_cmd("logs", "--no-color", "vllm").stdout
        assert "device gpu" in logs, logs[-2000:]
        decision = requests.post(f"{stack.agent_url}/observe", timeout=60, json={
            "agent_id": "gpu_1", "tick": 1, "position": [0, 0, 0],
            "nearby_resources": [{"name": "berry_1", "type": "berry", "position": [3, 0, 4], "distance": 5}],
        }).json()
        tools = {tool.name: tool.parameters for tool in load_settings().tools.tools}
        assert decision["source"] == "native", decision
        jsonschema.validate(decision["params"], tools[decision["tool"]])
