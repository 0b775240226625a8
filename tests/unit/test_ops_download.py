"""ops.download: the one-off compose command, exit codes, and that the token never leaves its file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_vllm.config import load_settings
from ops import compose, download
from ops.cli import build_parser
from ops.compose import OpsError

TOKEN = "hf_doNotPrintMe0123456789"


def test_command_runs_hf_in_the_vllm_service_with_the_token_path_only() -> None:
    cmd = download.download_command("cpu", "org/model", "v1.0", "arena-vllm-download-abc")
    assert cmd[:6] == ["docker", "compose", "-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml"]
    run = cmd[cmd.index("run") :]
    assert run[:6] == ["run", "--no-deps", "--name", "arena-vllm-download-abc", "--entrypoint", "hf"]
    assert "HF_TOKEN_PATH=/run/secrets/hf_token" in run and "HF_HUB_OFFLINE=0" in run
    assert run[-5:] == ["vllm", "download", "org/model", "--revision", "v1.0"]
    assert "--rm" not in run  # kept until its exit code is read, then removed
    assert not any(arg.startswith("HF_TOKEN=") for arg in cmd)


def test_without_revision_and_on_the_gpu_stack() -> None:
    cmd = download.download_command("gpu", "org/model", None, "n")
    assert "docker-compose.cpu.yml" not in cmd and cmd[-3:] == ["vllm", "download", "org/model"]


def test_cli_model_is_optional() -> None:
    args = build_parser().parse_args(["download", "--revision", "main", "--gpu"])
    assert (args.model, args.revision, args.device) == (None, "main", "gpu")


@pytest.mark.parametrize(
    ("state", "compose_code", "expected"),
    [
        ({"Running": False, "ExitCode": 0}, 0, 0),
        ({"Running": False, "ExitCode": 1}, 0, 1),  # compose said 0
        ({"Running": True, "ExitCode": 0}, 130, 130),
        (None, 0, 1),
        (None, 125, 125),
    ],
    ids=["ok", "failed-but-compose-said-0", "interrupted", "never-started", "compose-error"],
)
def test_exit_code_comes_from_the_container(state: dict[str, Any] | None, compose_code: int, expected: int) -> None:
    assert download.container_exit_code(state, compose_code) == expected


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A CPU machine whose token file holds TOKEN; records the commands run."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    seen: dict[str, Any] = {"calls": []}
    config = {
        "name": "arena-vllm",
        "secrets": {"hf_token": {"file": str(token)}},
        "services": {"vllm": {"environment": {"VLLM_PROFILE": "cpu"}, "volumes": []}},
    }

    def fake_stream(cmd: list[str]) -> int:
        seen["calls"].append(cmd)
        return 0

    monkeypatch.setattr(compose, "detect_device", lambda forced: forced or "cpu")
    monkeypatch.setattr(compose, "resolved_config", lambda device, env=None: config)
    monkeypatch.setattr(download, "stream", fake_stream)
    monkeypatch.setattr(download, "finish", lambda name, code: seen.setdefault("exit", 0))
    seen["token"], seen["config"] = token, config
    return seen


def test_download_never_shows_or_passes_the_token(stack: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert download.run_download("org/model", None, None) == 0
    (cmd,) = stack["calls"]
    assert TOKEN not in " ".join(cmd)
    out = capsys.readouterr().out
    assert TOKEN not in out and "arena-vllm_hf-cache" in out and "done" in out


def test_default_model_is_the_one_up_would_serve(stack: dict[str, Any]) -> None:
    download.run_download(None, None, None)
    (cmd,) = stack["calls"]
    assert cmd[-1] == load_settings(["profile=cpu"]).profile.model


def test_unreadable_token_stops_before_docker(stack: dict[str, Any]) -> None:
    stack["token"].chmod(0o600)
    stack["config"]["secrets"]["hf_token"]["file"] = str(stack["token"])
    if stack["token"].stat().st_uid == download.doctor.SERVER_UID:
        pytest.skip("the test user is the server's uid, so the file is readable")
    with pytest.raises(OpsError, match="cannot read"):
        download.run_download("org/model", None, None)
    assert not stack["calls"]


def test_a_local_model_folder_has_nothing_to_download(stack: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    stack["config"]["services"]["vllm"]["volumes"] = [{"type": "bind", "source": str(tmp_path), "target": "/models"}]
    with pytest.raises(OpsError, match="local folder"):
        download.run_download(None, None, None)
