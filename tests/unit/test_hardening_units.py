"""Issue 10's pieces that need no Docker: the agent's bearer token and in-flight cap, the secret
routes of the vLLM entrypoint, the backend config's key from the environment, doctor's exposure check."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from arena_vllm.agent import guard
from arena_vllm.agent.app import create_app
from arena_vllm.backends import VLLMBackendConfig
from arena_vllm.config import ConfigError, load_settings
from ops import doctor
from ops.engine import server
from ops.errors import EngineError

OBSERVATION = {"agent_id": "a1", "tick": 1, "position": [0.0, 0.0, 0.0]}


# --- the agent's bearer token -----------------------------------------------------------------


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    key = tmp_path / "agent_key"
    key.write_text("s3cret-token\n")
    settings = load_settings(
        [
            f"agent.api_key_file={key}",
            "backend.api_base=http://127.0.0.1:9/v1",
            "backend.max_retries=0",
            "backend.timeout_s=1",
        ]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(settings)), base_url="http://agent"
    ) as client:
        yield client


async def test_a_token_file_closes_every_route_but_health(keyed: httpx.AsyncClient) -> None:
    for method, path in (("POST", "/observe"), ("POST", "/tick"), ("GET", "/ready"), ("GET", "/metrics")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
            response = await keyed.request(method, path, json=OBSERVATION, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    assert (await keyed.get("/health")).status_code == 200  # Docker's healthcheck sends no token
    right = {"Authorization": "Bearer s3cret-token"}
    response = await keyed.post("/observe", json=OBSERVATION, headers=right)
    assert response.status_code == 200 and response.json()["tool"] == "idle", response.text  # the backend is down
    assert (await keyed.get("/metrics", headers=right)).status_code == 200


def test_no_token_file_or_an_empty_one_means_no_auth(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert guard.read_token(None) is None and guard.read_token(str(empty)) is None
    with pytest.raises(ConfigError, match="agent.api_key_file: cannot read .*missing"):
        guard.read_token(str(tmp_path / "missing"))


# --- the in-flight cap --------------------------------------------------------------------------


async def test_requests_over_the_in_flight_cap_get_503_with_retry_after() -> None:
    release = asyncio.Event()
    rejected: list[int] = []

    async def slow_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"done"})  # type: ignore[operator]

    limited = guard.InFlightLimit(slow_app, limit=2, retry_after_s=3, on_reject=lambda: rejected.append(1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(limited), base_url="http://agent") as client:
        held = [asyncio.create_task(client.post("/tick", json={})) for _ in range(2)]
        while limited.active < 2:
            await asyncio.sleep(0.01)
        over = await client.post("/observe", json={})
        probe_task = asyncio.create_task(client.get("/health"))  # probes are never capped...
        await asyncio.sleep(0.05)
        assert limited.active == 2 and not probe_task.done()  # ...(it waits on slow_app like the others)
        release.set()
        answers = await asyncio.gather(*held, probe_task)
    assert over.status_code == 503 and over.headers["retry-after"] == "3", over.headers
    assert over.json()["detail"][0]["type"] == "overloaded" and "agent.max_requests_in_flight" in over.text
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert rejected == [1] and limited.active == 0
    after = await httpx.AsyncClient(transport=httpx.ASGITransport(limited), base_url="http://a").post("/tick")
    assert after.status_code == 200  # the slots were given back


async def test_the_app_counts_rejections_in_metrics() -> None:
    settings = load_settings(["agent.max_requests_in_flight=1", "backend.api_base=http://127.0.0.1:9/v1"])
    app = create_app(settings)
    assert any(m.cls is guard.InFlightLimit and m.kwargs["limit"] == 1 for m in app.user_middleware)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://agent") as client:
        text = (await client.get("/metrics")).text
    assert 'arena_agent_requests_rejected_total{reason="in_flight"}' not in text or "0.0" in text
    assert "arena_agent_requests_rejected" in text


# --- secrets to vLLM ------------------------------------------------------------------------------


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    token, key = tmp_path / "hf_token", tmp_path / "api_key"
    token.write_text("hf_FakeTokenForTheTest1234567890\n")
    key.write_text("sk-a:b#c 'key'\n")  # YAML-hostile on purpose
    values = {
        "HF_TOKEN_FILE": str(token),
        "VLLM_API_KEY_FILE": str(key),
        "VLLM_PROFILE": "cpu",
        "ARENA_SECRET_DIR": str(tmp_path / "run"),
        "VLLM_API_KEY": "sk-from-env",
        "HF_TOKEN": "hf_envtoken",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {"token": "hf_FakeTokenForTheTest1234567890", "key": "sk-a:b#c 'key'", "dir": str(tmp_path / "run")}


def test_secrets_reach_the_server_by_file_never_by_environment_or_argv(secret_env: dict[str, str]) -> None:
    plan = server.build_plan([], "127.0.0.1", 8000)
    visible = json.dumps([plan.argv, plan.env])
    for value in (secret_env["token"], secret_env["key"], "sk-from-env", "hf_envtoken"):
        assert value not in visible
        assert value not in repr(plan) and value not in server.describe(plan, "cpu")
    assert plan.env["HF_TOKEN_PATH"] == os.environ["HF_TOKEN_FILE"]  # huggingface_hub reads the file itself
    config = plan.argv[plan.argv.index("--config") + 1]
    assert config == str(Path(secret_env["dir"]) / "vllm-secrets.yaml")
    assert "api_key='****'" in repr(plan)

    server.write_secret_config(plan)
    written = Path(config)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600 and stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    assert yaml.safe_load(written.read_text()) == {"api-key": secret_env["key"]}  # what vLLM's --config reads
    server.write_secret_config(plan)  # a restart rewrites it
    assert yaml.safe_load(written.read_text()) == {"api-key": secret_env["key"]}


def test_an_open_secret_folder_of_ours_is_closed_before_the_key_goes_in(secret_env: dict[str, str]) -> None:
    """As after a container restart, when the tmpfs comes back with its mount point's mode 0755."""
    Path(secret_env["dir"]).mkdir(mode=0o755)
    os.chmod(secret_env["dir"], 0o755)
    server.write_secret_config(server.build_plan([], "127.0.0.1", 8000))
    assert stat.S_IMODE(Path(secret_env["dir"]).stat().st_mode) == 0o700


def test_a_secret_folder_of_another_user_is_refused(
    secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(secret_env["dir"]).mkdir(mode=0o700)
    monkeypatch.setattr(server.os, "getuid", lambda: os.stat(secret_env["dir"]).st_uid + 1)
    with pytest.raises(EngineError, match="must be owned by uid"):
        server.write_secret_config(server.build_plan([], "127.0.0.1", 8000))


def test_without_secrets_nothing_is_added(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HF_TOKEN", "VLLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("HF_TOKEN_FILE", str(tmp_path / "absent"))  # compose's default is an empty file
    monkeypatch.setenv("VLLM_API_KEY_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("VLLM_PROFILE", "cpu")
    plan = server.build_plan([], "127.0.0.1", 8000)
    assert "--config" not in plan.argv and "HF_TOKEN_PATH" not in plan.env and plan.api_key is None
    assert "'HF_TOKEN': 'unset'" in server.describe(plan, "cpu")


# --- the backend config's key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"VLLM_API_KEY": "v", "OPENAI_API_KEY": "o"}, "v"),
        ({"OPENAI_API_KEY": "o"}, "o"),
        ({}, "EMPTY"),
    ],
)
def test_backend_config_reads_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name in ("VLLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert VLLMBackendConfig(api_base="http://h:1/v1").api_key.get_secret_value() == expected
    assert VLLMBackendConfig(api_base="http://h:1/v1", api_key="given").api_key.get_secret_value() == "given"
    assert "v" not in repr(VLLMBackendConfig(api_key="v")).split("api_key=")[1][:15]


# --- doctor: exposure ------------------------------------------------------------------------------


def test_doctor_fails_a_port_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    key, empty = tmp_path / "key", tmp_path / "empty"
    key.write_text("k")
    empty.write_text("")
    loopback = [("agent", "127.0.0.1", 5000), ("vllm", "127.0.0.1", 8000)]
    exposed = [("agent", "0.0.0.0", 5000), ("vllm", "0.0.0.0", 8000)]
    assert doctor.check_exposure(loopback, {"vllm": None, "agent": None}).status == "OK"
    assert doctor.check_exposure(exposed, {"vllm": key, "agent": key}).status == "OK"
    only_vllm = doctor.check_exposure(exposed, {"vllm": key, "agent": empty})
    assert only_vllm.status == "FAIL" and "agent on 0.0.0.0:5000" in only_vllm.detail
    assert "AGENT_API_KEY_FILE" in only_vllm.next_step and "VLLM_API_KEY_FILE" not in only_vllm.next_step
    neither = doctor.check_exposure([("vllm", "192.168.1.5", 8000)], {"vllm": tmp_path / "missing"})
    assert neither.status == "FAIL" and "VLLM_API_KEY_FILE" in neither.next_step
    assert doctor.is_loopback("127.0.0.2") and doctor.is_loopback("::1") and not doctor.is_loopback("0.0.0.0")
