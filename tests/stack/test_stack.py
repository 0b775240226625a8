"""The CPU stack from the repo's own compose files and Dockerfiles: health, model, volumes."""

from __future__ import annotations

import time

import requests

from tests.support.stack import Stack


def test_both_services_are_healthy(stack: Stack) -> None:
    for service in ("vllm", "agent"):
        container = stack.container(service)
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "healthy", service


def test_models_endpoint_lists_the_served_name(stack: Stack) -> None:
    models = requests.get(f"{stack.vllm_api_base}/models", headers=stack.auth_headers, timeout=10).json()
    assert [model["id"] for model in models["data"]] == [stack.served_model]


def test_agent_reaches_vllm_over_the_compose_network(stack: Stack) -> None:
    ready = requests.get(f"{stack.agent_url}/ready", timeout=30)
    assert ready.status_code == 200, ready.text


def test_hf_cache_volume_survives_down_and_up(stack: Stack) -> None:
    marker = "/root/.cache/huggingface/arena-marker"
    written = stack.container("vllm").exec_run(["sh", "-c", f"echo kept > {marker}"])
    assert written.exit_code == 0, written.output
    stack.compose_cmd("down")  # without -v: named volumes stay
    started = time.monotonic()
    stack.compose_cmd("up", "-d", "--wait")
    stack.log.append(f"warm restart to healthy in {time.monotonic() - started:.1f} s")
    read = stack.container("vllm").exec_run(["cat", marker])
    assert read.exit_code == 0 and read.output.strip() == b"kept", read.output
