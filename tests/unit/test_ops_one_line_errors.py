"""Every ``arena-vllm`` command fails with one line and a next step: bad input, no model cached, a docker
without the Compose v2 plugin (a stand-in ``docker`` on PATH answering as docker 27 does without it),
never a traceback or docker's usage text. Run in-process, so an escaping exception fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops import cli, run_vllm_server
from ops.compose import REPLICAS_FILE, REPO

#: docker 27 without the plugin: `docker compose -f x config` parses -f as docker's own flag.
NO_PLUGIN_DOCKER = """#!/bin/sh
if [ "$1" = compose ]; then
  if [ "$2" = version ]; then echo "docker: 'compose' is not a docker command." >&2; exit 1; fi
  echo "unknown shorthand flag: 'f' in -f" >&2
  echo "See 'docker --help'." >&2
  echo "Usage:  docker [OPTIONS] COMMAND" >&2
  exit 125
fi
exit 1
"""


@pytest.fixture
def no_compose_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker on PATH without Compose; no GPU; no model cached; the hub off."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(NO_PLUGIN_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.path.dirname(os.__file__)}:/usr/bin:/bin")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    for var in ("VLLM_PROFILE", "VLLM_MODEL", "VLLM_OVERRIDES", "ARENA_OVERRIDES"):
        monkeypatch.delenv(var, raising=False)


def failure(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """(the line the CLI exits with, everything printed) for a command that must fail."""
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    out = capsys.readouterr()
    printed = out.out + out.err
    assert ended.value.code not in (0, None), printed
    assert "Traceback" not in printed and "Usage:  docker" not in printed, printed
    return (ended.value.code if isinstance(ended.value.code, str) else ""), printed


NO_PLUGIN = "the Docker Compose v2 plugin is missing"
CASES = [
    # (argv, what the one line must say)
    (["up", "--cpu"], NO_PLUGIN),
    (["down"], NO_PLUGIN),
    (["download", "--cpu"], NO_PLUGIN),
    (["replicas", "--cpu", "--count", "2"], NO_PLUGIN),
    (["up", "--cpu", "--model", "./no/such/folder"], "no such folder"),
    (["plan", "--vram", "-1"], "--vram must be more than 0"),
    (["plan", "--vram", "8", "--free", "9"], "pass --free <= --vram"),
    (["plan", "--profile", "no-such-profile", "--vram", "8"], "profile"),
    (["plan", "--profile", "gpu-8gb"], "pass --vram"),  # no GPU here
    (["plan", "--profile", "gpu-8gb", "--vram", "8", "--model", "org/not-cached"], "allow the hub"),
    (["plan", "--profile", "gpu-8gb", "--vram", "8", "--model", "/no/such/model"], "pass a model folder"),
    (["export", "k8s", "--profile", "no-such-profile", "--out", "/tmp/arena-export-never"], "profile"),
]


@pytest.mark.parametrize(("argv", "says"), CASES, ids=[" ".join(argv) for argv, _ in CASES])
def test_each_command_fails_in_one_line_with_a_next_step(argv, says, no_compose_plugin, capsys) -> None:
    line, printed = failure(argv, capsys)
    assert line.startswith(f"{argv[0]}: ") and line.count("\n") == 0, printed
    assert says in line, line
    if says == NO_PLUGIN:
        assert "docker-compose-plugin" in line and "unknown shorthand flag" not in printed
    assert not (REPO / REPLICAS_FILE).exists() or argv[0] != "replicas"


def test_doctor_names_the_missing_plugin_as_a_check(no_compose_plugin, capsys) -> None:
    _, printed = failure(["doctor"], capsys)
    assert "FAIL  compose v2" in printed and "install the Compose v2 plugin" in printed


def test_a_local_model_only_root_can_read_is_refused_before_the_start(
    tmp_path, no_compose_plugin, monkeypatch, capsys
) -> None:
    """Weights at mode 0600 owned by root, as a conversion script run as root leaves them."""
    from ops import compose, up

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_text("x")
    weights.chmod(0o600)
    if os.stat(weights).st_uid == compose.SERVER_UID:
        pytest.skip("this test runs as the server's uid, which may read its own file")
    monkeypatch.setattr(
        compose,
        "resolved_config",
        lambda device, env=None: {
            "name": "arena-vllm",
            "services": {
                "vllm": {"volumes": [{"type": "bind", "source": str(folder), "target": "/models", "read_only": True}]}
            },
        },
    )
    monkeypatch.setattr(up, "run_build", lambda cmd, env: pytest.fail("built although the model is unreadable"))
    line, _ = failure(["up", "--cpu", "--model", str(folder)], capsys)
    assert "cannot read" in line and "model.safetensors (-rw-------" in line and "chmod -R a+rX" in line
    weights.chmod(0o644)
    assert compose.unreadable_by(folder, compose.SERVER_UID) == []


def test_the_entrypoint_fails_in_one_line_too(no_compose_plugin, monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit) as ended:
        run_vllm_server.main(["--dry-run", "profile=no-such-profile"])
    assert str(ended.value.code).startswith("run_vllm_server: ") and "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN_FILE", "/proc/1/environ")  # exists, not readable by a non-root user
    if os.access("/proc/1/environ", os.R_OK):
        return  # root reads everything: nothing more to see here
    with pytest.raises(SystemExit, match="HF_TOKEN_FILE: cannot read /proc/1/environ"):
        run_vllm_server.main(["--dry-run", "profile=cpu"])
