"""Start the repo's stack with testcontainers (CPU, or GPU where there is one), serving a tiny model made on the spot
or the real trained one (SmolLM2-135M-Instruct, built from its PyPI wheel by ``ops/real_model.py``).

Used by the stack tests' session fixtures and by the benchmark scripts' ``--start-stack``.

Example::

    with start_stack(Path("/tmp/arena"), "cpu") as stack:
        print(stack.vllm_api_base, stack.agent_url)
    with start_stack(Path("/tmp/arena"), "cpu", model="smollm2") as stack:
        print(stack.served_model)  # smollm2-135m-instruct
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
from testcontainers.compose import DockerCompose

from arena_vllm.config import Device
from ops import real_model
from ops.compose import REPO, compose_files, engine, service_container


class StackBuildError(RuntimeError):
    """``docker compose build`` failed; the whole output is the message, ``one_line`` what a command prints."""

    def __init__(self, output: str) -> None:
        super().__init__(f"docker compose build failed:\n{output}")
        errors = [line.strip() for line in output.splitlines() if "error" in line.lower() or "failed" in line.lower()]
        self.reason = (errors or [line for line in output.splitlines() if line.strip()] or ["no output"])[-1][:300]

    @property
    def one_line(self) -> str:
        return (
            f"the test stack did not build ({self.reason}). Fix: where no registry answers, run "
            "`python -m ops base-images` once and export the PYTHON_BASE it prints (as .ci/run does)"
        )


TINY_MODEL_SCRIPT = Path(__file__).with_name("make_tiny_model.py")
SERVED_MODEL = "tiny-arena"
#: Engine settings for the tiny model: small KV cache, but a context of 2048 or more, which
#: forced tool calls need to stay schema-valid on random weights.
ENGINE_OVERRIDES = "profile.kv_cache_memory_bytes=64M profile.max_model_len=2048 profile.max_num_seqs=32"
CACHE_DIR = Path(os.environ.get("ARENA_TEST_CACHE", Path.home() / ".cache" / "arena-vllm"))


@dataclass
class Stack:
    """A running stack (CPU or GPU): URLs on loopback, the compose handle, and the secrets it was given.

    vLLM requires ``api_key`` (as a user's stack would with VLLM_API_KEY_FILE set); the agent
    reads the same key from its secret; ``hf_token`` is a fake token planted to prove it leaks nowhere.
    """

    compose: DockerCompose
    project: str
    vllm_url: str
    agent_url: str
    served_model: str
    hf_token: str
    api_key: str
    env_file: Path
    log: list[str] = field(default_factory=list)

    @property
    def vllm_api_base(self) -> str:
        return f"{self.vllm_url}/v1"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def compose_cmd(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run ``docker compose <args>`` on this project; raises with its output on failure."""
        cmd = [*self.compose.compose_command_property, *args]
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def container(self, service: str) -> docker.models.containers.Container:
        """The docker SDK handle of one service's container."""
        return service_container(engine(), self.project, service)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def ensure_tiny_model(image: str) -> Path:
    """Make the tiny model inside the vLLM image (torch + transformers are there), cached by script hash."""
    digest = hashlib.sha256(TINY_MODEL_SCRIPT.read_bytes()).hexdigest()[:12]
    out = CACHE_DIR / f"tiny-model-{digest}"
    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    _log(f"making the tiny model in {out}")
    docker.from_env().containers.run(
        image,
        entrypoint=["python3", "/support/make_tiny_model.py", "/out"],
        user=f"{os.getuid()}:{os.getgid()}",
        environment={"HF_HOME": "/tmp/hf", "HF_HUB_OFFLINE": "1"},
        volumes={str(TINY_MODEL_SCRIPT.parent): {"bind": "/support", "mode": "ro"}, str(out): {"bind": "/out"}},
        remove=True,
    )
    return out


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value)
    path.chmod(0o644)  # the server runs as uid 1000 and reads it through the secret mount
    return path


def ensure_smollm2(image: str) -> Path:
    """The real trained model, converted in the vLLM image from its PyPI wheel, cached beside the tiny one."""
    return real_model.ensure_real_model(image, CACHE_DIR, log=_log)


@dataclass(frozen=True)
class StackModel:
    """A model the test stack can serve: how its folder is made (from the vLLM image), its served name, its engine
    overrides (Hydra, on top of the device's profile)."""

    make: Callable[[str], Path]
    served_name: str
    overrides: str
    agent_overrides: str = ""


#: ``start_stack(model=...)``: the tiny random model (the default everywhere) or the real one, served as ``up --cpu``
#: serves it: the CPU profile (max_model_len 4096 within SmolLM2's 8192; a 1 GiB KV cache holds 46k tokens at
#: 22.5 KiB each in bfloat16, 23k in float32) in the dtype it was built in.
MODELS = {
    "tiny": StackModel(ensure_tiny_model, SERVED_MODEL, ENGINE_OVERRIDES),
    # the agent waits for ticks of several real-model calls on 2 shared cores (agent=cpu's 25 s is the game's bound)
    "smollm2": StackModel(
        ensure_smollm2,
        real_model.SERVED_NAME,
        real_model.SERVE_OVERRIDES,
        "agent.tick_deadline_s=120 backend.timeout_s=115",
    ),
}


def write_env_file(
    workdir: Path,
    project: str,
    model_dir: Path,
    hf_token: str,
    api_key: str,
    served_name: str = SERVED_MODEL,
    overrides: str = ENGINE_OVERRIDES,
    agent_overrides: str = "",
) -> Path:
    """The compose variables for one isolated test stack (own project name, ports and secrets)."""
    values = {
        "COMPOSE_PROJECT_NAME": project,
        "VLLM_HOST_PORT": free_port(),
        "AGENT_HOST_PORT": free_port(),
        "VLLM_MODEL_DIR": model_dir,
        "VLLM_SERVED_MODEL_NAME": served_name,
        "VLLM_OVERRIDES": overrides,
        "HF_HUB_OFFLINE": 1,
        "HF_TOKEN_FILE": write_secret(workdir / "hf_token", hf_token),
        "VLLM_API_KEY_FILE": write_secret(workdir / "vllm_api_key", api_key),
        # a ceiling, not a wait: vLLM's CPU start took 35-60 s alone, over 300 s with other engines on the 2 cores
        "VLLM_START_PERIOD": "900s",
        "AGENT_OVERRIDES": agent_overrides,
    }
    env_file = workdir / "stack.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return env_file


def read_env_file(env_file: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@contextlib.contextmanager
def start_stack(workdir: Path, device: Device, extra_files: Sequence[str] = (), model: str = "tiny") -> Iterator[Stack]:
    """Build the images, make the model, ``up --wait`` the stack; always ``down -v`` at the end.

    ``cpu``: vLLM's CPU build; ``gpu``: the official vLLM image with a GPU reservation (needs an NVIDIA GPU).
    ``extra_files``: compose files after the stack's own, e.g. an ``ops replicas`` override.
    ``model``: a key of :data:`MODELS` (``tiny``, or ``smollm2`` for the real trained model).
    """
    served = MODELS[model]
    project = f"arena-test-{secrets.token_hex(3)}"
    hf_token = f"hf_arenaTestToken{secrets.token_hex(12)}"
    api_key = f"arena-key-{secrets.token_hex(12)}"
    files = [*compose_files(device, with_replicas=False), *extra_files]
    compose = DockerCompose(context=REPO, compose_file_name=files, wait=True)
    started = time.monotonic()
    _log("building images (docker compose build)")
    build = subprocess.run([*compose.compose_command_property, "build"], cwd=REPO, capture_output=True, text=True)
    if build.returncode != 0:
        raise StackBuildError(f"{build.stdout[-5000:]}\n{build.stderr[-5000:]}")
    image = f"{os.environ.get('ARENA_IMAGE_PREFIX', 'arena-vllm')}/vllm:{device}"
    model_dir = served.make(image)
    env_file = write_env_file(
        workdir, project, model_dir, hf_token, api_key, served.served_name, served.overrides, served.agent_overrides
    )
    compose = DockerCompose(context=REPO, compose_file_name=files, env_file=str(env_file), wait=True)
    env = read_env_file(env_file)
    stack = Stack(
        compose=compose,
        project=project,
        vllm_url=f"http://127.0.0.1:{env['VLLM_HOST_PORT']}",
        agent_url=f"http://127.0.0.1:{env['AGENT_HOST_PORT']}",
        served_model=served.served_name,
        hf_token=hf_token,
        api_key=api_key,
        env_file=env_file,
    )
    try:
        _log(f"starting project {project} (docker compose up --wait)")
        up_started = time.monotonic()
        try:
            compose.start()
        except subprocess.CalledProcessError as exc:
            logs = stack.compose_cmd("logs", "--no-color", "--tail", "80").stdout
            raise RuntimeError(
                f"the {device.upper()} stack did not become healthy: {exc.stderr.decode(errors='replace')[-2000:]}\n"
                f"--- last container logs ---\n{logs}"
            ) from None
        stack.log.append(f"up to healthy in {time.monotonic() - up_started:.1f} s")
        _log(f"healthy after {time.monotonic() - started:.0f} s in all ({stack.log[-1]})")
        yield stack
    finally:
        compose.stop(down=True)
