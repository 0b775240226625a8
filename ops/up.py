"""``python -m ops up`` / ``down``: start the stack for this machine and show it coming up.

``up`` picks the GPU stack when the engine has the nvidia runtime and nvidia-smi sees a card,
else the CPU switch (docker-compose.cpu.yml); it passes the profile and model to compose
through the environment (never by editing files), runs ``docker compose build`` (a failure is
reported as one, with the build's last lines), then ``docker compose up -d --wait``, and
meanwhile prints each service's state and the vLLM server's last log line.

Example::

    python -m ops up                                 # auto: GPU if usable, else CPU
    python -m ops up --cpu --model ./models/tiny     # a local folder, mounted read-only
    python -m ops up --gpu --profile gpu-8gb --timeout 1800
    python -m ops down                               # keeps the HF cache volume; -v deletes it
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shlex
import subprocess
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.errors import DockerException

from arena_vllm.config import available_options
from ops import compose, real_model
from ops.compose import REPO, Device, OpsError

#: Longer than the vLLM healthcheck's start_period (a first download of a 7B model).
DEFAULT_TIMEOUT_S = 1200
POLL_S = 5.0
#: Print an unchanged status again after this long, so a quiet wait still shows it is alive.
HEARTBEAT_S = 30.0
LOG_TAIL_ON_FAILURE = 20
#: Lines of a failed build repeated at the end (BuildKit prints the failing step and error last).
BUILD_TAIL_LINES = 25
#: Path suffix that makes a published port's URL useful, per service.
URL_PATHS = {"vllm": "/v1"}
SERVED_LINE = re.compile(r"run_vllm_server: model (?P<model>\S+) served as '(?P<served>[^']+)'")


@dataclass(frozen=True)
class UpOptions:
    """One field per command-line option of ``up``."""

    device: Device | None = None
    profile: str | None = None
    model: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S


def options_from(args: argparse.Namespace) -> UpOptions:
    """The parsed command line as options (one field per flag)."""
    return UpOptions(device=args.device, profile=args.profile, model=args.model, timeout_s=args.timeout)


def looks_like_path(value: str) -> bool:
    """Paths are written relative or absolute; HF repo ids are ``org/name``."""
    return value.startswith(("/", "./", "../", "~")) or value in {".", ".."}


def model_env(model: str) -> dict[str, str]:
    """VLLM_MODEL for a repo id; VLLM_MODEL_DIR (absolute, mounted at /models) for a local folder."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise OpsError(f"{model} has no config.json, so it is not a model folder the server can load")
        # VLLM_MODEL would win over /models in the entrypoint, so clear any inherited one.
        return {"VLLM_MODEL_DIR": str(folder.resolve()), "VLLM_MODEL": ""}
    if looks_like_path(model):
        raise OpsError(f"no such folder: {model} (a HuggingFace model is written as org/name)")
    return {"VLLM_MODEL": model}


def require_readable_model(folder: Path | None) -> None:
    """The container's user (non-root, Dockerfile.vllm) must read a mounted model folder, or vLLM dies loading it."""
    if folder is not None and (unreadable := compose.unreadable_by(folder, compose.SERVER_UID)):
        raise OpsError(
            f"the server runs as uid {compose.SERVER_UID} and cannot read {', '.join(unreadable)}; "
            f"`chmod -R a+rX {folder}` (or `sudo chown -R {compose.SERVER_UID} {folder}`)"
        )


def child_env(options: UpOptions, base: Mapping[str, str]) -> dict[str, str]:
    """The environment compose runs with: the caller's, plus the chosen profile and model."""
    env = dict(base)
    if options.profile:
        env["VLLM_PROFILE"] = options.profile
    if options.model:
        env.update(model_env(options.model))
    return env


def with_default_model(options: UpOptions, device: Device, env: dict[str, str]) -> dict[str, str]:
    """No --model on the CPU stack: the profile's model when the HF hub answers, else the embedded real one
    (ops/real_model.py); run after the build, since the model is converted in the vLLM image."""
    if options.model or device != "cpu":
        return env
    return real_model.cpu_default_env(env)


def validate_profile(device: Device, profile: str | None) -> None:
    """A GPU profile in the CPU image (or the reverse) would only fail minutes later."""
    if not profile or profile == "auto":
        return
    written_for = compose.profile_device(profile)
    if written_for != device:
        flag = "--gpu" if written_for == "gpu" else "--cpu"
        raise OpsError(
            f"profile {profile} is for {written_for}, but the {device} stack was chosen; "
            f"pass {flag} or another --profile"
        )


def build_command(device: Device) -> list[str]:
    """Build the stack's images first, so a failed build is reported as one (plain progress mixes with ours)."""
    return compose.compose_cmd(device, "--progress", "plain", "build")


def up_command(device: Device, timeout_s: int) -> list[str]:
    """Start the built images detached and let compose wait for healthy."""
    return compose.compose_cmd(device, "--progress", "plain", "up", "-d", "--wait", "--wait-timeout", str(timeout_s))


def run_build(cmd: Sequence[str], env: Mapping[str, str]) -> tuple[int, list[str]]:
    """Run the build, echoing its output as it comes; its exit code and last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=BUILD_TAIL_LINES)
    with subprocess.Popen(
        list(cmd),
        cwd=REPO,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            tail.append(line.rstrip("\n"))
    return proc.returncode, list(tail)


def report_build_failure(returncode: int, tail: Sequence[str]) -> None:
    """Say the build failed (not that the stack is unhealthy), with the lines that say why."""
    print(
        f"up: the image build failed (docker compose build exited {returncode}); nothing was started. Its last lines:"
    )
    print("\n".join(f"  | {line}" for line in tail))
    print(
        "up: fix what the build reports above. Behind a TLS proxy or without a registry, see README "
        "(ARENA_CA_BUNDLE, `python -m ops base-images`, TORCH_INDEX_URL)."
    )


def down_command(volumes: bool) -> list[str]:
    """Containers are found by project label, so the base file serves both stacks."""
    return compose.compose_cmd("gpu", "down", *(["-v"] if volumes else []))


def container_state(attrs: Mapping[str, Any]) -> str:
    """'running/healthy', 'running/starting', 'exited' ... from a container's inspect data."""
    state = attrs.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    status = state.get("Status", "?")
    return f"{status}/{health}" if health else status


def all_healthy(states: Mapping[str, str]) -> bool:
    """Every service of the stack is up and passes its healthcheck."""
    return bool(states) and all(state == "running/healthy" for state in states.values())


def last_line(logs: str) -> str:
    """The last non-empty line (progress bars end lines with carriage returns)."""
    lines = [line.strip() for line in logs.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def progress_line(elapsed_s: float, states: Mapping[str, str], vllm_log: str, width: int = 100) -> str:
    """One status line: every service's state and what the vLLM server said last."""
    services = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
    line = f"[{elapsed_s:5.0f} s] {services or 'no containers yet (building or pulling images)'}"
    if vllm_log:
        line += " | vllm: " + textwrap.shorten(vllm_log, width=width, placeholder=" ...")
    return line


def snapshot(client: Any, project: str) -> tuple[dict[str, str], str]:
    """States of the project's containers and the vLLM server's last log line."""
    containers = compose.project_containers(client, project)
    states = {name: container_state(container.attrs) for name, container in containers.items()}
    vllm = containers.get("vllm")
    log = last_line(vllm.logs(tail=5).decode(errors="replace")) if vllm else ""
    return states, log


def watch(proc: subprocess.Popen[bytes], project: str, poll_s: float = POLL_S) -> int:
    """Wait for compose, printing the stack's state when it changes (and every HEARTBEAT_S)."""
    started = last_print = time.monotonic()
    shown: tuple[dict[str, str], str] | None = None
    client = None
    while True:
        try:
            return proc.wait(timeout=poll_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            client = client or compose.engine()
            current = snapshot(client, project)
        except DockerException:
            continue  # the engine is busy building; compose's own output carries on
        now = time.monotonic()
        if current != shown or now - last_print >= HEARTBEAT_S:
            print(progress_line(now - started, *current), flush=True)
            shown, last_print = current, now


def endpoints(ports_by_service: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """'vllm  http://127.0.0.1:8000/v1' for every published port, from the containers' port maps."""
    lines = []
    for service, ports in sorted(ports_by_service.items()):
        seen = set()
        for bindings in (ports or {}).values():
            for binding in bindings or []:
                host = binding.get("HostIp") or "0.0.0.0"
                host = "localhost" if host in {"0.0.0.0", "::"} else host
                url = f"http://{host}:{binding['HostPort']}{URL_PATHS.get(service, '')}"
                if url not in seen:
                    seen.add(url)
                    lines.append(f"  {service:<6} {url}")
    return lines


def served_model(logs: str) -> str | None:
    """What the entrypoint printed it serves: 'name (from model)'."""
    match = SERVED_LINE.search(logs)
    return f"{match['served']} (from {match['model']})" if match else None


def report_ready(containers: Mapping[str, Any]) -> None:
    """Where the services listen, and the served model name clients must send."""
    print("up: the stack is healthy; listening on:")
    print("\n".join(endpoints({name: c.ports for name, c in containers.items()})))
    if "vllm" in containers and (served := served_model(containers["vllm"].logs(tail=200).decode(errors="replace"))):
        print(f"up: vLLM serves {served}")


def report_failure(containers: Mapping[str, Any], timeout_s: int, returncode: int, elapsed_s: float) -> None:
    """Each container's state and recent logs, and what usually explains them."""
    for name, container in sorted(containers.items()):
        state = container_state(container.attrs)
        print(f"--- {name}: {state}")
        if state != "running/healthy":
            print(container.logs(tail=LOG_TAIL_ON_FAILURE).decode(errors="replace").rstrip())
    if elapsed_s < timeout_s:
        print(
            f"up: docker compose up failed (exit {returncode}) after {elapsed_s:.0f} s, before the "
            f"{timeout_s} s timeout: its output and the logs above say why; `python -m ops doctor` checks "
            "GPU, ports, token and disk."
        )
        return
    print(
        f"up: not healthy within {timeout_s} s. A first start downloads the model: pre-fill the cache with "
        "`python -m ops download`, raise --timeout, or follow `docker compose logs -f vllm`; "
        "`python -m ops doctor` checks GPU, ports, token and disk."
    )


def run_up(options: UpOptions) -> int:
    """Choose the stack, start it with compose, watch it, and say where it listens."""
    device = compose.detect_device(options.device)
    validate_profile(device, options.profile)
    env = child_env(options, os.environ)
    config = compose.resolved_config(device, env)
    project = config["name"]
    require_readable_model(compose.local_model_dir(config))
    build = build_command(device)
    print(f"up: {device.upper()} stack, project {project}: {shlex.join(build)}", flush=True)
    try:
        returncode, tail = run_build(build, env)
    except KeyboardInterrupt:
        print("up: interrupted while building; nothing was started")
        return 130
    if returncode != 0:
        report_build_failure(returncode, tail)
        return returncode
    env = with_default_model(options, device, env)
    cmd = up_command(device, options.timeout_s)
    print(f"up: images built; {shlex.join(cmd)}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        returncode = watch(proc, project)
    except KeyboardInterrupt:
        proc.wait()
        print("up: interrupted; containers may still be starting (`python -m ops down` stops them)")
        return 130
    try:
        containers = compose.project_containers(compose.engine(), project)
    except DockerException as exc:
        print(f"up: compose exited {returncode}; the engine cannot be asked about containers: {exc}")
        return returncode or 1
    # Trust the containers, not only compose's status (its `run` exits 0 on failures with engine 20.10).
    if returncode != 0 or not all_healthy({name: container_state(c.attrs) for name, c in containers.items()}):
        report_failure(containers, options.timeout_s, returncode, time.monotonic() - started)
        return returncode or 1
    report_ready(containers)
    return 0


def run_down(volumes: bool) -> int:
    """Stop and remove the containers; the HF cache volume survives unless asked."""
    compose.require_compose()
    if volumes:
        print("down: -v also deletes the HF cache and compile cache volumes (weights download again)")
    return subprocess.run(down_command(volumes), cwd=REPO).returncode


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``up`` and ``down`` to the ops CLI."""
    up = commands.add_parser("up", help="start the stack for this machine (GPU if usable, else CPU) and wait")
    device = up.add_mutually_exclusive_group()
    device.add_argument("--cpu", dest="device", action="store_const", const="cpu", help="force the CPU stack")
    device.add_argument("--gpu", dest="device", action="store_const", const="gpu", help="force the GPU stack")
    up.add_argument(
        "--profile",
        choices=["auto", *available_options("profile")],
        help="VLLM_PROFILE for this start (default: the environment's, else auto)",
    )
    up.add_argument("--model", help="a HuggingFace repo id, or a local model folder (mounted read-only)")
    up.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for healthy (default {DEFAULT_TIMEOUT_S})",
    )
    up.set_defaults(func=lambda args: run_up(options_from(args)))

    down = commands.add_parser("down", help="stop the stack (keeps the HF cache volume)")
    down.add_argument("-v", "--volumes", action="store_true", help="also delete the HF cache and compile cache")
    down.set_defaults(func=lambda args: run_down(args.volumes))
