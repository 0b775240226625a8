"""The CPU stack from the repo's own compose files and Dockerfiles: health, model, volumes, the README's example."""

from __future__ import annotations

import json
import re
import time

import requests

from arena_vllm.agent.actions import game_problem
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import load_settings
from ops.compose import REPO
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


def test_the_readmes_observe_example_gets_the_kind_of_decision_it_shows(stack: Stack) -> None:
    """The curl under "Start the stack", sent as written: the model decides, and both the decision and the one the
    README shows are ones the game can carry out for that body."""
    readme = (REPO / "README.md").read_text()
    body = json.loads(re.search(r"curl -s 127.0.0.1:5000/observe .*?-d '(.*?)'", readme, re.S).group(1))
    shown = json.loads(re.search(r"    # (\{.*\})\n", readme).group(1))
    decision = requests.post(f"{stack.agent_url}/observe", json=body, timeout=120).json()
    assert set(decision) == set(shown) and decision["source"] == shown["source"] == "native", decision
    observation, settings = Observation.model_validate(body), load_settings()
    for made in (decision, shown):
        assert game_problem(made["tool"], made["params"], observation, settings) is None, made
