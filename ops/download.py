"""``python -m ops download [MODEL]``: pre-fill the stack's HF cache volume, with progress.

It runs ``hf download`` in a one-off container of the vLLM service (``docker compose run
--no-deps``, removed afterwards), so the volume (``<project>_hf-cache``) and the ``hf_token`` secret are the
ones the server uses. The token stays in its file: huggingface_hub reads it from
``/run/secrets/hf_token`` through ``HF_TOKEN_PATH``, so it is never on a command line, in the
container's environment, or in this tool's output.

Example::

    python -m ops download                                   # the model `up` would serve
    python -m ops download Qwen/Qwen2.5-7B-Instruct --revision main
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docker.errors import DockerException

from arena_vllm.config import ConfigError
from ops import compose, doctor
from ops.compose import REPO, Device
from ops.engine.gpus import gpu_memory
from ops.errors import EngineError, OpsError

#: Where compose mounts the hf_token secret in the vLLM container.
SECRET_PATH = "/run/secrets/hf_token"


def download_command(device: Device, model: str, revision: str | None, name: str) -> list[str]:
    """The compose command that downloads into the service's HF cache (no token in it).

    The container is named and kept (no ``--rm``) so its exit code can be read from the
    engine: ``compose run`` 2.40 on engine 20.10 exits 0 even when the container fails.
    """
    args = [
        "run",
        "--no-deps",
        "--name",
        name,
        "--entrypoint",
        "hf",
        "-e",
        f"HF_TOKEN_PATH={SECRET_PATH}",  # a path: huggingface_hub reads the token itself
        "-e",
        "HF_HUB_OFFLINE=0",  # a .env made for air-gapped serving must not block this
        "vllm",
        "download",
        model,
    ]
    if revision:
        args += ["--revision", revision]
    return compose.compose_cmd(device, *args)


def default_model(device: Device, config: Mapping[str, Any]) -> str:
    """The model ``up`` would serve here: VLLM_MODEL, else the selected profile's."""
    selection = compose.select_model(config, gpu_memory() if device == "gpu" else [])
    if selection.local_dir is not None:
        raise OpsError(
            f"the stack serves the local folder {selection.local_dir}; nothing to download "
            "(name a MODEL to download one anyway)"
        )
    return selection.model


def stream(cmd: list[str]) -> int:
    """Run compose attached to our terminal, so hf's progress bars show as they are drawn."""
    return subprocess.run(cmd, cwd=REPO).returncode


def container_exit_code(state: Mapping[str, Any] | None, compose_returncode: int) -> int:
    """The container's own exit code when it ran to the end; compose's when it never started."""
    if not state:
        return compose_returncode or 1
    if state.get("Running"):
        return 130  # interrupted: it is removed below
    return int(state.get("ExitCode", 1))


def finish(name: str, compose_returncode: int) -> int:
    """Read the one-off container's exit code from the engine, then remove the container."""
    try:
        container = compose.engine().containers.get(name)
    except DockerException:
        return container_exit_code(None, compose_returncode)
    state = container.attrs.get("State")
    container.remove(force=True)
    return container_exit_code(state, compose_returncode)


def run_download(model: str | None, revision: str | None, forced: Device | None) -> int:
    """Check the token file, then stream the download from the one-off container."""
    device = compose.detect_device(forced)
    config = compose.resolved_config(device)
    token = doctor.check_hf_token(Path(config["secrets"]["hf_token"]["file"]))
    if token.status == "FAIL":
        raise OpsError(f"{token.detail}; {token.next_step}")
    try:
        model = model or default_model(device, config)
    except (ConfigError, EngineError) as exc:
        raise OpsError(f"cannot tell which model `up` would serve: {exc}; name a MODEL") from None
    volume = f"{config['name']}_{compose.HF_CACHE_VOLUME}"
    name = f"{config['name']}-download-{secrets.token_hex(3)}"
    cmd = download_command(device, model, revision, name)
    print(
        f"download: {model}{'@' + revision if revision else ''} into volume {volume} "
        f"(token: {token.detail})\ndownload: {shlex.join(cmd)}",
        flush=True,
    )
    try:
        returncode = finish(name, stream(cmd))
    except KeyboardInterrupt:
        finish(name, 130)
        return 130
    if returncode == 0:
        print(f"download: done; `python -m ops up` finds {model} in {volume}")
    else:
        print(
            f"download: failed ({returncode}). Gated model? set HF_TOKEN_FILE (see `python -m ops doctor`); "
            "offline? use a local folder with `python -m ops up --model DIR`"
        )
    return returncode


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``download`` to the ops CLI."""
    parser = commands.add_parser("download", help="pre-fill the HF cache volume with a model (shows progress)")
    parser.add_argument("model", nargs="?", help="HuggingFace repo id (default: the model `up` would serve)")
    parser.add_argument("--revision", help="branch, tag or commit (default: main)")
    device = parser.add_mutually_exclusive_group()
    device.add_argument(
        "--cpu", dest="device", action="store_const", const="cpu", help="run the download in the CPU image"
    )
    device.add_argument(
        "--gpu", dest="device", action="store_const", const="gpu", help="run the download in the GPU image"
    )
    parser.set_defaults(func=lambda args: run_download(args.model, args.revision, args.device))
