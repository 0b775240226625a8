"""What the CPU profile really answers: decision latency with a model of the profile's shape, on this machine.

The ``cpu`` profile serves Qwen2.5-0.5B-Instruct. Its weights are not downloaded here (no
hub at run time); a random-weight model of the same shape stands in (24 layers, hidden 896,
14 heads, 2 KV heads, intermediate 4864, vocab 151936: the same compute per token), with the
tests' small tokenizer (tests/support/make_tiny_model.py). Random weights fill every number
and string of a call up to its bounds, so calls are as long as the schema allows: an upper
bound on what the real model writes. The engine runs with the profile's settings unchanged.

One run: build the images, make the model in the vLLM image (cached), start the CPU stack
with it (agent deadline 600 s, so latency is measured, not the deadline), then
``bench_tick.py`` against it (one /observe, a /tick of N, the same N straight to vLLM,
N /observe one after another), plus vLLM's own per-request prefill and decode times::

    flock /tmp/arena-docker.lock python -m benchmarks.bench_profile --agents 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx

from arena_vllm.config import load_settings
from benchmarks.bench_tick import Target, run
from ops.compose import REPO, compose_cmd
from tests.support.stack import CACHE_DIR, SERVED_MODEL, TINY_MODEL_SCRIPT, write_env_file

#: Qwen2.5-0.5B's architecture (its config.json), the model of configs/profile/cpu.yaml.
PROFILE_SHAPE = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
MAKE_MODEL = f"""
import json, pathlib, torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
from make_tiny_model import make_tokenizer
out = pathlib.Path('/out'); make_tokenizer(out)
vocab = json.loads((out / 'tokenizer.json').read_text())['model']['vocab']
eos, pad = vocab['<|im_end|>'], vocab['<|endoftext|>']
torch.manual_seed(0)
config = Qwen2Config(**{PROFILE_SHAPE!r}, eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
GenerationConfig(eos_token_id=eos, pad_token_id=pad).save_pretrained(out)
for path in out.iterdir(): path.chmod(0o644)
"""


def ensure_profile_model(image: str) -> Path:
    """The profile-shaped random model, made once in the vLLM image (torch and transformers are there)."""
    out = CACHE_DIR / "profile-shape-qwen2.5-0.5b"
    if (out / "model.safetensors").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    print(f"making the profile-shaped model in {out}", file=sys.stderr, flush=True)
    docker.from_env().containers.run(
        image,
        entrypoint=["python3", "-c", MAKE_MODEL],
        user=f"{os.getuid()}:{os.getgid()}",
        environment={"HF_HOME": "/tmp/hf", "HF_HUB_OFFLINE": "1", "PYTHONPATH": "/support"},
        volumes={str(TINY_MODEL_SCRIPT.parent): {"bind": "/support", "mode": "ro"}, str(out): {"bind": "/out"}},
        remove=True,
    )
    return out


@contextlib.contextmanager
def profile_stack(workdir: Path) -> Iterator[Target]:
    """The CPU stack with the profile-shaped model and the profile's engine settings; removed afterwards."""
    project = f"arena-profile-{secrets.token_hex(3)}"
    api_key = f"arena-key-{secrets.token_hex(12)}"
    compose = compose_cmd("cpu", "-p", project)
    subprocess.run([*compose, "build", "--quiet"], cwd=REPO, check=True)
    model = ensure_profile_model(f"{os.environ.get('ARENA_IMAGE_PREFIX', 'arena-vllm')}/vllm:cpu")
    env_file = write_env_file(workdir, project, model, f"hf_unused{secrets.token_hex(8)}", api_key)
    # The profile as it is: none of the tests' engine overrides.
    text = "".join(line + "\n" for line in env_file.read_text().splitlines() if not line.startswith("VLLM_OVERRIDES="))
    env_file.write_text(text + "AGENT_OVERRIDES=agent.tick_deadline_s=600\n")
    env = dict(line.split("=", 1) for line in text.splitlines())
    compose += ["--env-file", str(env_file)]
    try:
        subprocess.run([*compose, "up", "-d", "--wait"], cwd=REPO, check=True)
        yield Target(
            f"http://127.0.0.1:{env['AGENT_HOST_PORT']}",
            f"http://127.0.0.1:{env['VLLM_HOST_PORT']}/v1",
            SERVED_MODEL,
            api_key,
        )
    finally:
        subprocess.run([*compose, "down", "-v"], cwd=REPO, capture_output=True)


def engine_times(target: Target) -> dict[str, float]:
    """vLLM's histogram sums and counts (prefill, decode, tokens) from /metrics, for per-request averages."""
    wanted = (
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
    )
    text = httpx.get(
        target.vllm_api_base.removesuffix("/v1") + "/metrics",
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=30,
    ).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        for name in wanted:
            for suffix in ("_sum", "_count"):
                if line.startswith(name + suffix):
                    values[name + suffix] = values.get(name + suffix, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as workdir, profile_stack(Path(workdir)) as target:
        asyncio.run(run(target, settings, args.agents, args.repeats))
        times = engine_times(target)
    requests = times.get("vllm:request_prefill_time_seconds_count", 0) or 1
    print(
        f"\nvLLM per request (all {requests:.0f} requests of the run, {os.cpu_count()} CPUs): "
        f"prefill {times.get('vllm:request_prefill_time_seconds_sum', 0) / requests:.2f} s, "
        f"decode {times.get('vllm:request_decode_time_seconds_sum', 0) / requests:.2f} s, "
        f"prompt {times.get('vllm:request_prompt_tokens_sum', 0) / requests:.0f} tokens, "
        f"call {times.get('vllm:request_generation_tokens_sum', 0) / requests:.0f} tokens"
    )


if __name__ == "__main__":
    main()
