"""``python -m arena_vllm.agent``: the container's start command, configured from the environment.

Bad settings (exit 2, the key named) are in test_bad_input.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.support.fault_server import FaultServer
from tests.support.service import COORDINATES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serves_with_settings_from_the_environment_and_prints_no_secret() -> None:
    port = free_port()
    with FaultServer(model="tiny", tool_args={"target_position": [1, 2, 3]}) as fault:
        env = {
            **os.environ,
            "VLLM_API_BASE": fault.api_base,
            "VLLM_SERVED_MODEL_NAME": "tiny",
            "VLLM_API_KEY": "sk-do-not-print",
            "AGENT_PORT": str(port),
            "AGENT_OVERRIDES": f"agent.host=127.0.0.1 agent.tick_deadline_s=3 {COORDINATES}",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "arena_vllm.agent", "scene=plain"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, process.communicate()[0]
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the agent service did not become ready"
                time.sleep(0.2)
            decision = httpx.post(f"{url}/observe", json={"agent_id": "a", "position": [0, 0, 0]}, timeout=10).json()
            assert decision["tool"] == "move_to"
        finally:
            process.terminate()
            output = process.communicate(timeout=15)[0]
    assert "arena_vllm.agent.app: backend: " in output and "serves 'tiny'" in output  # start-up probe
    assert "Application shutdown complete" in output  # SIGTERM: lifespan ran, the backend was closed
    assert '"tick_deadline_s": 3.0' in output and fault.api_base in output
    assert "sk-do-not-print" not in output
    assert "gpu_memory_utilization" not in output  # engine values are the profile's, not the agent's to print
