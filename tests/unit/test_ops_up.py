"""ops.up: command-line options -> environment and compose command, and the progress it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arena_vllm.config import available_options, load_settings
from ops import up
from ops.cli import build_parser
from ops.compose import OpsError


def profile_for(device: str) -> str:
    """A profile written for 'gpu' or 'cpu', found in configs/."""
    return next(
        name for name in available_options("profile") if load_settings([f"profile={name}"]).profile.device == device
    )


def test_cli_flags_map_to_one_options_field_each() -> None:
    args = build_parser().parse_args(["up", "--cpu", "--profile", "cpu", "--model", "org/name", "--timeout", "60"])
    assert up.options_from(args) == up.UpOptions(device="cpu", profile="cpu", model="org/name", timeout_s=60)
    assert up.options_from(build_parser().parse_args(["up"])) == up.UpOptions()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--cpu", "--gpu"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--profile", "no-such-profile"])


def test_a_repo_id_sets_vllm_model() -> None:
    assert up.model_env("Qwen/Qwen2.5-7B-Instruct") == {"VLLM_MODEL": "Qwen/Qwen2.5-7B-Instruct"}


def test_a_model_folder_is_mounted_by_absolute_path_and_clears_vllm_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert up.model_env("./tiny") == {"VLLM_MODEL_DIR": str(tmp_path / "tiny"), "VLLM_MODEL": ""}


def test_folders_that_are_not_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="no config.json"):
        up.model_env(str(tmp_path))
    with pytest.raises(OpsError, match="no such folder"):
        up.model_env(str(tmp_path / "typo"))


def test_child_env_adds_profile_and_model_without_touching_the_callers() -> None:
    base = {"PATH": "/usr/bin", "VLLM_MODEL": "org/old"}
    env = up.child_env(up.UpOptions(profile="cpu", model="org/new"), base)
    assert env == {"PATH": "/usr/bin", "VLLM_MODEL": "org/new", "VLLM_PROFILE": "cpu"}
    assert base == {"PATH": "/usr/bin", "VLLM_MODEL": "org/old"}
    assert up.child_env(up.UpOptions(), base) == base


def test_a_profile_for_the_other_stack_is_refused_early() -> None:
    with pytest.raises(OpsError, match="--gpu"):
        up.validate_profile("cpu", profile_for("gpu"))
    with pytest.raises(OpsError, match="--cpu"):
        up.validate_profile("gpu", profile_for("cpu"))
    up.validate_profile("gpu", profile_for("gpu"))
    up.validate_profile("cpu", "auto")
    up.validate_profile("cpu", None)


def test_build_first_then_up_starts_detached_and_waits() -> None:
    build, cmd = up.build_command("cpu"), up.up_command("cpu", 600)
    assert build[:6] == cmd[:6] == ["docker", "compose", "-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml"]
    assert build[-1] == "build"
    assert cmd[cmd.index("up") :] == ["up", "-d", "--wait", "--wait-timeout", "600"]
    assert "docker-compose.cpu.yml" not in up.up_command("gpu", 600)


#: A build that fails the way BuildKit does: many step lines, the error last, a non-zero exit.
FAILING_BUILD = [
    sys.executable,
    "-c",
    (
        "import sys\n"
        "for i in range(60): print(f'#{i} [cpu 3/9] RUN pip install step {i}')\n"
        "print('ERROR: failed to solve: process \"/bin/sh -c pip install torch\" did not complete successfully: exit code: 1')\n"
        "sys.exit(17)\n"
    ),
]


def test_run_build_echoes_the_build_and_keeps_its_last_lines(capsys: pytest.CaptureFixture[str]) -> None:
    returncode, tail = up.run_build(FAILING_BUILD, os.environ)
    assert returncode == 17
    assert len(tail) == up.BUILD_TAIL_LINES and tail[-1].startswith("ERROR: failed to solve")
    assert "#0 [cpu 3/9]" in capsys.readouterr().out  # the whole build was shown as it ran


def test_a_failed_build_is_reported_as_a_build_failure_with_its_last_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(up.compose, "detect_device", lambda forced: "cpu")
    monkeypatch.setattr(up.compose, "resolved_config", lambda device, env: {"name": "arena-vllm"})
    monkeypatch.setattr(up, "build_command", lambda device: FAILING_BUILD)

    def no_up(*args: object, **kwargs: object) -> None:
        pytest.fail("compose up ran after a failed build")

    monkeypatch.setattr(up, "watch", no_up)

    assert up.run_up(up.UpOptions(device="cpu")) == 17

    out = capsys.readouterr().out
    report = out[out.index("up: the image build failed") :]
    assert "docker compose build exited 17" in report
    assert '  | ERROR: failed to solve: process "/bin/sh -c pip install torch"' in report
    assert "  | #59 [cpu 3/9]" in report and "  | #0 [cpu 3/9]" not in report  # the last lines only
    assert "not healthy" not in out


def test_down_keeps_volumes_unless_asked() -> None:
    assert up.down_command(False)[-1] == "down"
    assert up.down_command(True)[-2:] == ["down", "-v"]


def test_states_and_log_lines() -> None:
    assert up.container_state({"State": {"Status": "running", "Health": {"Status": "starting"}}}) == "running/starting"
    assert up.container_state({"State": {"Status": "exited"}}) == "exited"
    assert up.last_line("Loading weights\nDownloading: 40%\rDownloading: 80%\r\n\n") == "Downloading: 80%"
    assert up.all_healthy({"vllm": "running/healthy", "agent": "running/healthy"})
    assert not up.all_healthy({"vllm": "running/healthy", "agent": "created"})
    assert not up.all_healthy({})


def test_progress_line() -> None:
    line = up.progress_line(42.4, {"vllm": "running/starting", "agent": "created"}, "INFO Loading model " + "x" * 300)
    assert line.startswith("[   42 s] agent created, vllm running/starting | vllm: INFO Loading model")
    assert len(line) < 200
    assert "building or pulling" in up.progress_line(3, {}, "")


class FakeProc:
    """compose up that runs for a few polls, then exits with a code."""

    def __init__(self, polls: int, returncode: int) -> None:
        self.polls, self.returncode = polls, returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.polls:
            self.polls -= 1
            raise subprocess.TimeoutExpired("docker compose up", timeout or 0)
        return self.returncode


def test_watch_prints_changes_only_and_returns_composes_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshots = iter(
        [
            ({"vllm": "running/starting"}, "Loading weights"),
            ({"vllm": "running/starting"}, "Loading weights"),
            ({"vllm": "running/healthy", "agent": "running/starting"}, "Application startup complete."),
        ]
    )
    monkeypatch.setattr(up.compose, "engine", lambda: object())
    monkeypatch.setattr(up, "snapshot", lambda client, project: next(snapshots))
    assert up.watch(FakeProc(polls=3, returncode=0), "arena-vllm", poll_s=0) == 0  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "vllm: Loading weights" in lines[0] and "agent running/starting" in lines[1]


def test_endpoints_and_served_model() -> None:
    ports: dict[str, Any] = {
        "vllm": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]},
        "agent": {"5000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "5001"}, {"HostIp": "::", "HostPort": "5001"}]},
    }
    assert up.endpoints(ports) == ["  agent  http://localhost:5001", "  vllm   http://127.0.0.1:8000/v1"]
    logs = "run_vllm_server: profile cpu\nrun_vllm_server: model /models served as 'local-model'\nINFO ..."
    assert up.served_model(logs) == "local-model (from /models)"
    assert up.served_model("nothing") is None
