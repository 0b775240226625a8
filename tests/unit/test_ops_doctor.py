"""ops.doctor: each check from plain inputs, and the whole run with every probe replaced."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from docker.errors import DockerException

from ops import compose, doctor
from ops.compose import Selection

TOKEN = "hf_doNotPrintMe0123456789"


def stat_result(mode: int, uid: int, gid: int, size: int = 10) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, gid, size, 0, 0, 0))


def test_engine_down_fails_with_a_next_step() -> None:
    check = doctor.check_engine(None, "Error while fetching server API version: connection refused")
    assert check.status == "FAIL" and "connection refused" in check.detail
    assert "systemctl start docker" in check.next_step
    assert doctor.check_engine({"ServerVersion": "27.3.1", "OperatingSystem": "Ubuntu"}, None).status == "OK"


@pytest.mark.parametrize(
    ("version", "config_error", "status"),
    [(None, None, "FAIL"), ("2.20.3", None, "FAIL"), ("v2.40.3", "bad variable", "FAIL"), ("2.24.0", None, "OK")],
    ids=["missing", "too-old-for-reset", "invalid-config", "ok"],
)
def test_compose_check(version: str | None, config_error: str | None, status: str) -> None:
    assert doctor.check_compose(version, "not found" if version is None else None, config_error).status == status


@pytest.mark.parametrize(
    ("runtimes", "vram", "status", "says"),
    [
        ({"nvidia", "runc"}, 23.6, "OK", "GPU stack"),
        ({"runc"}, 23.6, "WARN", "nvidia-ctk"),
        ({"nvidia"}, None, "WARN", "driver"),
        (set(), None, "OK", "CPU stack"),
    ],
    ids=["gpu", "card-without-runtime", "runtime-without-driver", "cpu-machine"],
)
def test_gpu_check(runtimes: set[str], vram: float | None, status: str, says: str) -> None:
    check = doctor.check_gpu(runtimes, vram, "550.54.14, NVIDIA GeForce RTX 4090" if vram else None)
    assert check.status == status and says in check.detail + check.next_step


def test_profile_for_the_wrong_stack_fails_before_a_long_start() -> None:
    gpu_profile = Selection("gpu-8gb", "gpu-8gb", "gpu", "org/model")
    assert doctor.check_profile("cpu", gpu_profile, None).status == "FAIL"
    assert doctor.check_profile("gpu", gpu_profile, None).status == "OK"
    assert doctor.check_profile("gpu", None, "no GPU profile fits 3.8 GiB").status == "FAIL"


def test_wsl_notes_and_windows_drive_paths() -> None:
    native = "Linux version 6.8.0-45-generic (buildd@lcy02) #45-Ubuntu"
    wsl2 = "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1)"
    wsl1 = "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)"
    assert doctor.check_wsl(native, {"repository": "/mnt/c/x"}).detail == "not WSL"
    assert doctor.check_wsl(wsl1, {}).status == "FAIL"
    ok = doctor.check_wsl(wsl2, {"repository": "/home/me/arena-vllm", "HF_HOME": ""})
    assert ok.status == "OK" and "Windows NVIDIA driver" in ok.next_step and "/mnt/c" in ok.next_step
    slow = doctor.check_wsl(wsl2, {"repository": "/home/me/arena-vllm", "VLLM_MODEL_DIR": "/mnt/d/models"})
    assert slow.status == "WARN" and "VLLM_MODEL_DIR" in slow.detail


def test_port_checks() -> None:
    assert doctor.check_port("vllm", "127.0.0.1", 8000, True, None, "arena-vllm", "VLLM_HOST_PORT").status == "OK"
    ours = doctor.check_port(
        "vllm", "127.0.0.1", 8000, False, ("arena-vllm-vllm-1", "arena-vllm"), "arena-vllm", "VLLM_HOST_PORT"
    )
    assert ours.status == "OK" and "our running stack" in ours.detail
    taken = doctor.check_port("agent", "127.0.0.1", 5000, False, None, "arena-vllm", "AGENT_HOST_PORT")
    assert taken.status == "FAIL" and "AGENT_HOST_PORT" in taken.next_step


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "readable"),
    [
        (0o600, 1000, 0, True),
        (0o600, 0, 0, False),
        (0o640, 0, 1000, True),
        (0o644, 0, 0, True),
        (0o200, 1000, 0, False),
    ],
    ids=["owner", "root-private", "group", "world", "owner-without-read"],
)
def test_readable_by_the_server_uid(mode: int, uid: int, gid: int, readable: bool) -> None:
    assert doctor.readable_by(stat_result(mode, uid, gid), 1000) is readable


def token_checks(tmp_path: Path) -> list[doctor.Check]:
    """Every outcome of the token check; none may carry the token."""
    default = tmp_path / "empty"
    default.write_text("")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    empty = tmp_path / "blank"
    empty.write_text("")
    somebody_else = os.getuid() + 4242  # a uid that owns nothing here: only "other" bits apply
    token.chmod(0o600)
    private = doctor.check_hf_token(token, default, tmp_path / "none", uid=somebody_else)
    token.chmod(0o644)
    return [
        doctor.check_hf_token(default, default, tmp_path / "none"),
        doctor.check_hf_token(tmp_path / "missing", default, tmp_path / "none"),
        doctor.check_hf_token(tmp_path, default, tmp_path / "none"),
        doctor.check_hf_token(empty, default, tmp_path / "none"),
        private,
        doctor.check_hf_token(token, default, tmp_path / "none", uid=somebody_else),
    ]


def test_token_file_outcomes(tmp_path: Path) -> None:
    statuses = [check.status for check in token_checks(tmp_path)]
    assert statuses == ["OK", "FAIL", "FAIL", "WARN", "FAIL", "OK"]


def test_token_is_never_in_any_message(tmp_path: Path) -> None:
    for check in token_checks(tmp_path):
        assert TOKEN not in json.dumps(check.__dict__) and TOKEN[:8] not in check.detail


def test_unset_token_points_at_the_host_token_file(tmp_path: Path) -> None:
    default, host_token = tmp_path / "empty", tmp_path / "token"
    default.write_text("")
    host_token.write_text(TOKEN)
    assert str(host_token) in doctor.check_hf_token(default, default, host_token).next_step


def test_disk_checks() -> None:
    hub = Selection("auto", "gpu-24gb", "gpu", "org/model")
    local = Selection("auto", "cpu", "cpu", "local folder /srv/m", local_dir=Path("/srv/m"))
    assert doctor.check_disk("/var/lib/docker", None, hub, None, None).status == "WARN"
    assert "nothing to download" in doctor.check_disk("/d", 5.0, local, None, None).detail
    assert "already in the HF cache volume" in doctor.check_disk("/d", 5.0, hub, 14.2, None).detail
    assert doctor.check_disk("/d", 10.0, hub, None, 14.2).status == "FAIL"
    assert doctor.check_disk("/d", 100.0, hub, None, 14.2).status == "OK"
    assert doctor.check_disk("/d", doctor.MIN_FREE_GIB - 1, hub, None, None).status == "WARN"
    assert doctor.check_disk("/d", doctor.MIN_FREE_GIB + 1, hub, None, None).status == "OK"


def test_cached_model_size_comes_from_the_hf_cache_layout(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    repo = tmp_path / "models--org--model"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "blobs" / "deadbeef").write_bytes(b"x" * 2048)
    (snapshot / "model.safetensors").symlink_to("../../blobs/deadbeef")
    size = doctor.probe_cached_gib(tmp_path, "org/model")
    assert size is not None and size * doctor.GIB >= 2048
    assert doctor.probe_cached_gib(tmp_path, "org/other") is None
    assert doctor.probe_cached_gib(tmp_path / "absent", "org/model") is None


def test_published_ports_come_from_the_resolved_config() -> None:
    config = {
        "services": {
            "vllm": {"ports": [{"host_ip": "127.0.0.1", "target": 8000, "published": "8001"}]},
            "agent": {"ports": [{"target": 5000, "published": "5000"}]},
        }
    }
    assert doctor.published_ports(config) == [("agent", "0.0.0.0", 5000), ("vllm", "127.0.0.1", 8001)]


def fake_config(token_file: Path) -> dict[str, Any]:
    return {
        "name": "arena-vllm",
        "secrets": {"hf_token": {"file": str(token_file)}},
        "services": {
            "vllm": {
                "environment": {"VLLM_PROFILE": "cpu"},
                "volumes": [],
                "ports": [{"host_ip": "127.0.0.1", "published": "8000"}],
            },
            "agent": {"ports": [{"host_ip": "127.0.0.1", "published": "5000"}]},
        },
    }


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A healthy CPU machine; tests change single probes."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    facts: dict[str, Any] = {"config": fake_config(token), "busy_ports": set()}

    def engine() -> dict[str, Any]:
        if facts.get("engine_down"):
            raise DockerException("connection refused")
        return {
            "ServerVersion": "27.3.1",
            "OperatingSystem": "Ubuntu",
            "Runtimes": {"runc": {}},
            "DockerRootDir": "/var/lib/docker",
        }

    monkeypatch.setattr(doctor, "probe_engine", engine)
    monkeypatch.setattr(doctor, "probe_gpus", lambda: [])
    monkeypatch.setattr(doctor, "probe_gpu_driver", lambda: None)
    monkeypatch.setattr(doctor, "probe_compose_version", lambda: "2.40.3")
    monkeypatch.setattr(compose, "resolved_config", lambda device, env=None: facts["config"])
    monkeypatch.setattr(doctor, "probe_proc_version", lambda: "Linux version 6.8.0-generic")
    monkeypatch.setattr(doctor, "probe_port_free", lambda host, port: port not in facts["busy_ports"])
    monkeypatch.setattr(doctor, "probe_port_owner", lambda port: None)
    monkeypatch.setattr(doctor, "probe_agent_ready", lambda host, port: facts.get("ready"))
    monkeypatch.setattr(doctor, "probe_free_gib", lambda path: 120.0)
    monkeypatch.setattr(doctor, "probe_volume_dir", lambda name: None)
    monkeypatch.setattr(doctor, "probe_cached_gib", lambda cache, repo: None)
    return facts


def test_a_healthy_cpu_machine_passes(machine: dict[str, Any]) -> None:
    checks = doctor.run_checks()
    assert [c.status for c in checks] == ["OK"] * len(checks)
    assert {c.name for c in checks} >= {
        "docker engine",
        "compose v2",
        "nvidia gpu",
        "profile",
        "wsl2",
        "hf token",
        "disk",
        "port 127.0.0.1:8000",
        "port 127.0.0.1:5000",
    }
    assert doctor.exit_code(checks) == 0


def test_engine_down_fails_and_skips_what_needs_it(machine: dict[str, Any]) -> None:
    machine["engine_down"] = True
    checks = {c.name: c for c in doctor.run_checks()}
    assert checks["docker engine"].status == "FAIL" and checks["disk"].detail.startswith("skipped")
    assert doctor.exit_code(checks.values()) == 1


def test_a_busy_port_fails_the_run(machine: dict[str, Any]) -> None:
    machine["busy_ports"] = {8000}
    checks = {c.name: c for c in doctor.run_checks()}
    assert checks["port 127.0.0.1:8000"].status == "FAIL" and checks["port 127.0.0.1:5000"].status == "OK"


def test_json_output_is_machine_readable_and_secret_free(
    machine: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    machine["busy_ports"] = {5000}
    assert doctor.run(argparse.Namespace(json=True)) == 1
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["ok"] is False and {"name", "status", "detail", "next_step"} <= set(report["checks"][0])
    assert TOKEN not in out


def test_text_output_shows_next_steps_under_problems(
    machine: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    machine["busy_ports"] = {5000}
    doctor.run(argparse.Namespace(json=False))
    lines = capsys.readouterr().out.splitlines()
    failing = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert "-> " in lines[failing + 1] and lines[-1] == "1 failure(s), 0 warning(s)"


def test_wsl2_older_kernels_and_the_driver_folder(tmp_path) -> None:
    """4.19 WSL2 kernels say only '-microsoft-standard'; the GPU needs the Windows driver's /usr/lib/wsl/lib."""
    old_wsl2 = "Linux version 4.19.104-microsoft-standard (oe-user@oe-host) (gcc version 8.2.0 (GCC))"
    home = {"repository": "/home/me/arena-vllm"}
    assert doctor.check_wsl(old_wsl2, home).status == "OK"
    (tmp_path / "libcuda.so.1").touch()
    assert doctor.check_wsl(old_wsl2, home, doctor.probe_wsl_libs(tmp_path)).status == "OK"
    missing = doctor.check_wsl(old_wsl2, home, doctor.probe_wsl_libs(tmp_path / "absent"))
    assert missing.status == "WARN" and "/usr/lib/wsl/lib" in missing.detail and "Windows" in missing.next_step
    empty = doctor.check_wsl(old_wsl2, home, [])
    assert empty.status == "WARN" and "libcuda" in empty.detail


@pytest.mark.parametrize(
    ("ready", "status", "says"),
    [
        (None, "OK", "not running"),
        ({"ready": True, "tools_seen_in": "template"}, "OK", "renders the tools"),
        ({"ready": True, "tools_seen_in": "system_prompt"}, "OK", "drops tools"),
        ({"ready": True, "tools_seen_in": "unknown"}, "WARN", "cannot say"),
        ({"detail": "missing bearer token"}, "WARN", "missing bearer token"),
    ],
    ids=["down", "template", "system-prompt", "unknown", "needs-key"],
)
def test_doctor_says_where_tools_reach_the_model(machine: dict[str, Any], ready: Any, status: str, says: str) -> None:
    machine["ready"] = ready
    [tools] = [check for check in doctor.run_checks() if check.name == "tools"]
    assert tools.status == status and says in tools.detail
