"""Secrets and exposure of the running CPU stack (issue 5).

The session stack was given a fake HuggingFace token and a vLLM API key through compose
secrets. Each leak check first proves the secret did arrive where it belongs (the secret file,
the entrypoint's "set" line), so "not found anywhere else" means something.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest
import requests
from docker.models.containers import Container

from ops.compose import engine, project_containers
from tests.support.decisions import assert_model_decision
from tests.support.observations import OBSERVATION
from tests.support.stack import Stack

#: What a real HuggingFace user token looks like; none may be baked into an image.
HF_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")


@pytest.fixture(scope="module")
def containers(stack: Stack) -> list[Container]:
    """Every container of the stack's compose project (not just the two we know of)."""
    found = project_containers(engine(), stack.project)
    assert set(found) >= {"vllm", "agent"}, found
    return list(found.values())


@pytest.fixture
def agent(stack: Stack) -> Container:
    return stack.container("agent")


@pytest.fixture
def vllm(stack: Stack) -> Container:
    return stack.container("vllm")


def secrets_of(stack: Stack) -> dict[str, str]:
    return {"HF token": stack.hf_token, "vLLM API key": stack.api_key}


def exec_text(container: Container, *cmd: str) -> str:
    result = container.exec_run(list(cmd))
    assert result.exit_code == 0, (cmd, result.output)
    return result.output.decode(errors="replace")


def proc1_uid(container: Container) -> int:
    """The real uid of the container's main process (not just the default user of ``exec``)."""
    status = exec_text(container, "cat", "/proc/1/status")
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_the_secrets_reach_only_the_secret_files(stack: Stack, vllm: Container, agent: Container) -> None:
    # The control for every "nowhere" below: the values are real and arrive where they should.
    assert exec_text(vllm, "cat", "/run/secrets/hf_token").strip() == stack.hf_token
    assert exec_text(agent, "cat", "/run/secrets/vllm_api_key").strip() == stack.api_key
    assert agent.exec_run(["test", "-e", "/run/secrets/hf_token"]).exit_code != 0, "the agent must not get the HF token"


def test_no_secret_in_docker_inspect_of_any_container_or_image(stack: Stack, containers: list[Container]) -> None:
    for container in containers:
        container.reload()
        dumps = {"container": json.dumps(container.attrs), "image": json.dumps(container.image.attrs)}
        for what, value in secrets_of(stack).items():
            for kind, text in dumps.items():
                assert value not in text, f"{what} in docker inspect of {container.name} ({kind})"


def test_no_token_in_the_history_of_the_stack_images(stack: Stack, containers: list[Container]) -> None:
    images = {container.image.id: container.image for container in containers}
    prefix = os.environ.get("ARENA_IMAGE_PREFIX", "arena-vllm")
    names = {tag for image in images.values() for tag in image.tags}
    assert {f"{prefix}/vllm:cpu", f"{prefix}/agent:latest"} <= names, names
    for image in images.values():
        history = json.dumps(image.history())  # the full CreatedBy of each layer, as `docker history --no-trunc`
        assert "CreatedBy" in history
        for what, value in secrets_of(stack).items():
            assert value not in history, f"{what} in the history of {image.tags}"
        assert not HF_TOKEN_PATTERN.search(history), f"an HF token in the history of {image.tags}"
        assert "HF_TOKEN=" not in history, f"HF_TOKEN baked into {image.tags}"
        env = image.attrs["Config"].get("Env") or []
        assert not [e for e in env if e.startswith(("HF_TOKEN=", "HUGGING_FACE_HUB_TOKEN=", "VLLM_API_KEY="))], env


def test_no_secret_in_container_logs(stack: Stack, containers: list[Container], vllm: Container) -> None:
    # The control: vLLM's entrypoint did see both secrets (it prints "set", never the value).
    assert "'HF_TOKEN': 'set (HF_TOKEN_PATH file)'" in vllm.logs().decode(errors="replace")
    assert "'VLLM_API_KEY': 'set (--config file)'" in vllm.logs().decode(errors="replace")
    for container in containers:
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        for what, value in secrets_of(stack).items():
            assert value not in logs, f"{what} in the logs of {container.name}"


def test_no_secret_in_the_agents_environment(stack: Stack, agent: Container) -> None:
    environ = exec_text(agent, "cat", "/proc/1/environ").replace("\0", "\n")
    exec_env = exec_text(agent, "env")
    assert "VLLM_API_KEY_FILE=/run/secrets/vllm_api_key" in environ  # the control: we read the real environment
    for what, value in secrets_of(stack).items():
        assert value not in environ, f"{what} in the agent's process environment"
        assert value not in exec_env, f"{what} in the agent's exec environment"
    assert "HF_TOKEN" not in environ and "HF_TOKEN" not in exec_env


def test_agent_runs_as_a_non_root_user(agent: Container) -> None:
    assert agent.attrs["Config"]["User"] not in ("", "0", "root"), agent.attrs["Config"]["User"]
    assert int(exec_text(agent, "id", "-u")) != 0
    assert proc1_uid(agent) != 0


def test_vllm_runs_as_uid_1000(vllm: Container) -> None:
    assert vllm.attrs["Config"]["User"] not in ("", "0", "root"), vllm.attrs["Config"]["User"]
    assert int(exec_text(vllm, "id", "-u")) == 1000
    assert proc1_uid(vllm) == 1000


def test_every_published_port_binds_loopback(containers: list[Container]) -> None:
    published = 0
    for container in containers:
        container.reload()
        for port, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items():
            for binding in bindings or []:  # None: exposed but not published
                published += 1
                assert binding["HostIp"] == "127.0.0.1", f"{container.name} publishes {port} on {binding}"
    assert published >= 2, "expected vLLM's and the agent's ports to be published"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_vllm_refuses_requests_without_the_key_while_the_agent_still_decides(
    stack: Stack, session: requests.Session
) -> None:
    models = f"{stack.vllm_api_base}/models"
    assert session.get(models, timeout=30).status_code == 401
    assert session.get(models, headers={"Authorization": "Bearer wrong-key"}, timeout=30).status_code == 401
    assert session.get(models, headers=stack.auth_headers, timeout=30).status_code == 200

    decision = session.post(f"{stack.agent_url}/observe", json=OBSERVATION, timeout=120)
    assert decision.status_code == 200, decision.text
    assert_model_decision(decision.json())
