"""Container hardening and secret routes of the running CPU stack, read back from Docker and /proc (issue 10).

What compose asked for is checked in tests/unit/test_compose_config.py; here is what the
engine actually applied (``docker inspect``) and what the processes actually see (their
``/proc/<pid>/status``, ``environ`` and ``cmdline``). The figures measured along the way
(memory peak, threads, /dev/shm in use) are printed: the limits in compose are sized from them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from docker.models.containers import Container

from tests.support.stack import Stack

SERVICES = ("vllm", "agent")
#: Reads every process's cmdline, environ and state that this user may read (all of the container's:
#: each container runs as one uid), as {pid: {"state": ..., "name": ..., "cmdline": ..., "environ": ...}}.
PROC_DUMP = r"""
import json, os
out = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
        out[pid] = {"state": status["State"], "name": status["Name"]}
        if not status["State"].startswith("Z"):  # a zombie's environ is not readable, and it is asserted on below
            out[pid].update({name: open(f"/proc/{pid}/{name}", "rb").read().decode(errors="replace").replace("\0", " ")
                             for name in ("cmdline", "environ")})
    except OSError as exc:
        out[pid] = {"error": str(exc)}
print(json.dumps(out))
"""


def inspect(stack: Stack, service: str) -> dict[str, Any]:
    container = stack.container(service)
    container.reload()
    return container.attrs


def run(container: Container, *cmd: str) -> tuple[int, str]:
    result = container.exec_run(list(cmd))
    return result.exit_code, result.output.decode(errors="replace")


def proc_status(container: Container, pid: str = "1") -> dict[str, str]:
    code, text = run(container, "cat", f"/proc/{pid}/status")
    assert code == 0, text
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.parametrize("service", SERVICES)
def test_docker_applied_the_hardening(stack: Stack, service: str) -> None:
    attrs = inspect(stack, service)
    host = attrs["HostConfig"]
    assert host["CapDrop"] in (["ALL"], ["CAP_ALL"]) and not host["CapAdd"], (host["CapDrop"], host["CapAdd"])
    assert host["SecurityOpt"] == ["no-new-privileges:true"], host["SecurityOpt"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert host["Memory"] > 0 and host["PidsLimit"] and host["PidsLimit"] > 0, (host["Memory"], host["PidsLimit"])
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    # What the kernel applied to the main process: no capabilities at all, no privilege gain.
    status = proc_status(stack.container(service))
    assert status["NoNewPrivs"].strip() == "1"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, (status["CapEff"], status["CapBnd"])


def test_the_agent_has_a_read_only_root_and_a_small_tmp(stack: Stack) -> None:
    attrs = inspect(stack, "agent")
    assert attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert attrs["HostConfig"]["Tmpfs"] == {"/tmp": "size=16m,mode=1777"}
    agent = stack.container("agent")
    code, text = run(agent, "touch", "/app/written")
    assert code != 0 and "Read-only file system" in text, text
    code, text = run(agent, "sh", "-c", "echo x > /tmp/written && cat /tmp/written")  # the control
    assert code == 0 and text.strip() == "x", text


def test_vllm_on_cpu_has_its_own_shm_and_no_usage_stats(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    attrs = inspect(stack, "vllm")
    assert attrs["HostConfig"]["IpcMode"] == "private"
    shm_size = attrs["HostConfig"]["ShmSize"]
    assert shm_size == 256 * 2**20
    env = attrs["Config"]["Env"]
    assert "VLLM_NO_USAGE_STATS=1" in env and "DO_NOT_TRACK=1" in env, env
    code, text = run(stack.container("vllm"), "df", "-B1", "--output=size,used", "/dev/shm")
    assert code == 0, text
    size, used = map(int, text.splitlines()[-1].split())
    assert size == shm_size and used < size, text
    with capsys.disabled():
        print(f"\n[hardening] vllm /dev/shm in use: {used / 2**20:.1f} MiB of {size / 2**20:.0f} MiB")


@pytest.mark.parametrize("service", SERVICES)
def test_measured_use_is_under_the_limits(stack: Stack, service: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The figures the compose limits were sized from (cgroup v1 keeps the peak; v2 only the current use)."""
    container = stack.container(service)
    limits = inspect(stack, service)["HostConfig"]
    stats = container.stats(stream=False)
    memory, pids = stats["memory_stats"], stats.get("pids_stats", {})
    peak = memory.get("max_usage") or memory["usage"]
    threads = pids.get("current", 0)
    assert 0 < peak < limits["Memory"], (peak, limits["Memory"])
    assert 0 < threads < limits["PidsLimit"], (threads, limits["PidsLimit"])
    with capsys.disabled():
        print(
            f"\n[hardening] {service}: memory peak {peak / 2**20:.0f} MiB (limit {limits['Memory'] / 2**20:.0f}),"
            f" processes+threads {threads} (limit {limits['PidsLimit']})"
        )


def test_no_secret_in_any_process_environment_or_command_line(stack: Stack) -> None:
    secrets = {"HF token": stack.hf_token, "vLLM API key": stack.api_key}
    seen: dict[str, dict[str, dict[str, str]]] = {}
    for service in SERVICES:
        code, text = run(stack.container(service), "python3", "-c", PROC_DUMP)
        assert code == 0, text
        seen[service] = json.loads(text)
        # None left unreaped: the vLLM entrypoint's warm-up ends before healthy, and init reaps it (compose init).
        zombies = {pid: p["name"] for pid, p in seen[service].items() if p.get("state", "").startswith("Z")}
        assert not zombies, f"{service}: zombie processes {zombies}"
        unreadable = {pid: p["error"] for pid, p in seen[service].items() if "error" in p}
        assert not unreadable, f"{service}: could not read {unreadable}"
    # The controls: we read the real processes, and the secrets did arrive by their routes.
    vllm = seen["vllm"].values()
    assert sum("EngineCore" in p["cmdline"] for p in vllm) >= 1, "expected vLLM's engine process too"
    server = [p for p in vllm if "vllm.entrypoints.openai.api_server" in p["cmdline"]]
    assert server and all("--config /run/arena/vllm-secrets.yaml" in p["cmdline"] for p in server), server
    assert all("HF_TOKEN_PATH=/run/secrets/hf_token" in p["environ"] for p in server)
    for service, processes in seen.items():
        for pid, proc in processes.items():
            for what, value in secrets.items():
                assert value not in proc["cmdline"], f"{what} in the command line of {service} pid {pid}"
                assert value not in proc["environ"], f"{what} in the environment of {service} pid {pid}"


def test_the_key_file_is_on_tmpfs_readable_only_by_the_server_user(stack: Stack) -> None:
    vllm = stack.container("vllm")
    code, text = run(vllm, "stat", "-c", "%a %u %s", "/run/arena/vllm-secrets.yaml")
    assert code == 0, text
    mode, uid, size = text.split()
    assert (mode, uid) == ("600", "1000") and int(size) > len(stack.api_key), text
    code, text = run(vllm, "sh", "-c", "grep ' /run/arena ' /proc/mounts")
    assert code == 0 and text.split()[2] == "tmpfs" and "mode=700" in text, text
