"""The stack's performance evidence: four figures, each next to a baseline measured in the same run.

1. **Decisions per second** through the agent service (a ``/tick`` of N agents) vs. the same N
   requests sent straight to vLLM at once (bench_tick's measurements, imported, not copied).
   Target: agent / direct >= 0.95.
2. **Warm start to healthy**: ``docker compose up -d --wait`` of the whole stack after a ``down``
   (no ``-v``: images built, model on disk, caches kept) vs. the same vLLM image started alone
   (docker SDK) with the same environment, mounts and volumes as the stack's vLLM container,
   polled on ``/health``. Target: stack / bare <= 1.2. The stack's vLLM and agent ``/health``
   are polled during ``up`` too, so the printout shows where the stack's extra time goes.
3. **Image sizes**: the agent image over its Python base (target <= 100 MB) and the vLLM CPU
   image (over the same base), from the Docker API (uncompressed ``Size``, MB = 10^6 bytes).
4. **Schema-valid decision rate** of the served model with forced strict native tool calls (the
   backend's default, ``tool_choice=required``) vs. the old prompt-only approach
   (``function_calling_format="prompt"``): same model, prompts, tools and sampling, every answer
   checked with ``validate_tool_call`` against the tool schemas.

Nothing here is asserted: it prints one table. Run it against the test CPU stack (built and
started with testcontainers, removed afterwards)::

    python -m benchmarks.bench_stack --start-stack

or against a stack you started (the warm-start step runs ``down`` / ``up`` on its compose project)::

    docker compose -f docker-compose.yml -f docker-compose.cpu.yml up -d --wait
    python -m benchmarks.bench_stack --agent-url http://127.0.0.1:5000 --vllm-api-base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx

from arena_vllm.agent.policy import plan_call
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends import VLLMBackend, VLLMBackendConfig
from arena_vllm.config import Settings, env_overrides, load_settings
from arena_vllm.tool_shapes import normalize_tools, validate_tool_call
from benchmarks.bench_tick import (
    Bench,
    Target,
    add_target_arguments,
    comparable,
    first_model,
    observations,
    stack_target,
    started_stack,
    timed,
)
from ops.compose import REPO, compose_files, engine, service_container

DPS_TARGET = 0.95
START_TARGET = 1.2
AGENT_OVER_BASE_TARGET_MB = 100.0
#: Bounds: a start that takes longer than this is a failure, not a figure.
START_TIMEOUT_S = 600.0
POLL_S = 0.25
#: Calls in flight at once in the validity step (the engine batches them; bounded so a CPU keeps up).
VALIDITY_CONCURRENCY = 16
MB = 1e6


@dataclass
class Compose:
    """How to run ``docker compose`` on the stack's project, and which project it is."""

    command: list[str]
    project: str

    def run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        result = subprocess.run(
            [*self.command, *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join([*self.command, *args])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )

    def container(self, service: str) -> Any:
        return service_container(engine(), self.project, service)


@dataclass
class Figures:
    """Everything measured, printed as one table at the end."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (figure, value, vs baseline / target)

    def add(self, figure: str, value: str, note: str = "") -> None:
        self.rows.append((figure, value, note))
        print(f"  {figure}: {value}  {note}", file=sys.stderr, flush=True)

    def print(self) -> None:
        width = max(len(row[0]) for row in self.rows)
        value_width = max(len(row[1]) for row in self.rows)
        print()
        for figure, value, note in self.rows:
            print(f"  {figure:<{width}}  {value:<{value_width}}  {note}".rstrip())


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# -- 1. decisions per second ---------------------------------------------------------------------


async def decisions_per_second(target: Target, settings: Settings, agents: int, repeats: int, figures: Figures) -> None:
    """A /tick of N vs. N direct concurrent requests, interleaved, median of ``repeats`` each."""
    bench = Bench(target, settings, agents)
    times: dict[str, list[float]] = {"tick": [], "direct": []}
    tokens: dict[str, list[float]] = {"tick": [], "direct": []}
    try:
        await bench.direct()  # warm-up: both paths once
        await bench.tick()
        bench.model_decisions.clear()
        for repeat in range(repeats):
            for name, step in (("tick", bench.tick), ("direct", bench.direct)):
                before = (await bench.counters())["generated"]
                times[name].append(await timed(step))
                tokens[name].append((await bench.counters())["generated"] - before)
            print(
                f"repeat {repeat + 1}/{repeats}: "
                + ", ".join(f"{k} {v[-1]:.2f} s ({tokens[k][-1]:.0f} tokens)" for k, v in times.items())
                + f"; tick/direct {times['tick'][-1] / times['direct'][-1]:.3f}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await bench.close()
    tick, direct = statistics.median(times["tick"]), statistics.median(times["direct"])
    ratio = direct / tick
    unequal = comparable(
        agents, bench.model_decisions, statistics.median(tokens["tick"]), statistics.median(tokens["direct"])
    )
    figures.add(
        f"decisions/s, /tick of {agents} through the agent",
        f"{agents / tick:.2f}/s",
        f"(median {tick:.2f} s of {repeats}; model decisions per tick {bench.model_decisions})",
    )
    figures.add(
        f"decisions/s, {agents} direct concurrent requests to vLLM",
        f"{agents / direct:.2f}/s",
        f"(median {direct:.2f} s of {repeats}; tokens generated: tick "
        f"{statistics.median(tokens['tick']):.0f}, direct {statistics.median(tokens['direct']):.0f})",
    )
    note = f"(target >= {DPS_TARGET}: {unequal or verdict(ratio >= DPS_TARGET)})"
    figures.add("agent / direct decisions per second", f"{ratio:.3f}", note)


# -- 2. warm start to healthy -------------------------------------------------------------------


def wait_healthy(url: str, timeout: float, alive: Callable[[], str | None] = lambda: None) -> float:
    """Poll ``url`` until it answers 200; the monotonic time it did. ``alive`` says why to stop early."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.monotonic()
            problem = alive()
            if problem:
                raise RuntimeError(f"{url} never became healthy: {problem}")
            time.sleep(POLL_S)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f} s")


def run_spec(container: Any) -> dict[str, Any]:
    """``containers.run`` arguments that start the same image as ``container`` (a stopped compose
    service) the same way: environment, mounts and named volumes, IPC mode; only the port differs."""
    attrs = container.attrs
    volumes = {}
    for mount in attrs["Mounts"]:
        source = mount["Name"] if mount["Type"] == "volume" else mount["Source"]
        volumes[source] = {"bind": mount["Destination"], "mode": "rw" if mount["RW"] else "ro"}
    return {
        "image": attrs["Config"]["Image"],
        "environment": attrs["Config"]["Env"],
        "volumes": volumes,
        "ipc_mode": attrs["HostConfig"].get("IpcMode") or None,
    }


def bare_vllm_start(spec: dict[str, Any]) -> float:
    """Seconds from ``docker run`` of vLLM alone to its first 200 on /health; the container is removed."""
    from tests.support.stack import free_port

    port = free_port()
    client = docker.from_env()
    started = time.monotonic()
    container = client.containers.run(
        **spec, ports={"8000/tcp": ("127.0.0.1", port)}, detach=True, labels={"arena-vllm.bench": "bare-vllm"}
    )
    try:

        def exited() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                return f"container exited:\n{container.logs(tail=40).decode(errors='replace')}"
            return None

        return wait_healthy(f"http://127.0.0.1:{port}/health", START_TIMEOUT_S, exited) - started
    finally:
        container.remove(force=True)


def stack_start(compose: Compose, vllm_url: str, agent_url: str) -> dict[str, float]:
    """``up -d --wait`` of the stack, timed; vLLM's and the agent's /health polled meanwhile."""
    seen: dict[str, float] = {}
    done = threading.Event()

    def poll(name: str, url: str) -> None:
        with contextlib.suppress(Exception):
            seen[name] = wait_healthy(url, START_TIMEOUT_S, lambda: "stopped polling" if done.is_set() else None)

    pollers = [
        threading.Thread(target=poll, args=(name, url), daemon=True)
        for name, url in (("vllm", f"{vllm_url}/health"), ("agent", f"{agent_url}/health"))
    ]
    started = time.monotonic()
    for poller in pollers:
        poller.start()
    try:
        compose.run("up", "-d", "--wait")
        finished = time.monotonic()
        for poller in pollers:
            poller.join(timeout=10)
    finally:
        done.set()
    return {"up --wait": finished - started, **{name: at - started for name, at in seen.items()}}


def warm_starts(compose: Compose, vllm_url: str, agent_url: str, repeats: int, figures: Figures) -> None:
    """Alternate bare vLLM and whole-stack starts, both warm; ends with the stack up again."""
    spec = run_spec(compose.container("vllm"))
    bare: list[float] = []
    stack: list[dict[str, float]] = []
    for repeat in range(repeats):
        print(
            f"warm start {repeat + 1}/{repeats}: compose down (volumes kept), bare vLLM, compose up",
            file=sys.stderr,
            flush=True,
        )
        compose.run("down")
        bare.append(bare_vllm_start(spec))
        stack.append(stack_start(compose, vllm_url, agent_url))
        print(
            f"  bare vLLM {bare[-1]:.1f} s; stack " + ", ".join(f"{k} {v:.1f} s" for k, v in stack[-1].items()),
            file=sys.stderr,
            flush=True,
        )
    bare_s = statistics.median(bare)
    up_s = statistics.median(s["up --wait"] for s in stack)
    ratio = up_s / bare_s
    inside = ", ".join(
        f"{name} /health answered at {statistics.median(s[name] for s in stack if name in s):.1f} s"
        for name in ("vllm", "agent")
        if any(name in s for s in stack)
    )
    figures.add(
        "warm stack start to healthy (compose up -d --wait)", f"{up_s:.1f} s", f"(median of {repeats}; {inside})"
    )
    figures.add(
        "bare vLLM start to /health 200 (docker run, same image/model/env)",
        f"{bare_s:.1f} s",
        f"(median of {repeats}: {', '.join(f'{b:.1f}' for b in bare)})",
    )
    figures.add(
        "stack / bare vLLM start", f"{ratio:.2f}", f"(target <= {START_TARGET}: {verdict(ratio <= START_TARGET)})"
    )


# -- 3. image sizes -----------------------------------------------------------------------------


def image_sizes(agent_image: str, vllm_image: str, base_image: str, figures: Figures) -> None:
    client = docker.from_env()
    base = client.images.get(base_image)
    base_layers = base.attrs["RootFS"]["Layers"]
    for label, name in (("agent", agent_image), ("vLLM CPU", vllm_image)):
        image = client.images.get(name)
        on_base = image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
        over = (image.attrs["Size"] - base.attrs["Size"]) / MB
        note = f"(base {base_image} {base.attrs['Size'] / MB:.0f} MB" + ("" if on_base else "; NOT built on it") + ")"
        figures.add(f"{label} image {name}", f"{image.attrs['Size'] / MB:.0f} MB", note)
        if label == "agent":
            ok = on_base and over <= AGENT_OVER_BASE_TARGET_MB
            figures.add(
                "agent image over its Python base",
                f"{over:.1f} MB",
                f"(target <= {AGENT_OVER_BASE_TARGET_MB:.0f} MB: {verdict(ok)})",
            )
        else:
            figures.add("vLLM CPU image over the same base", f"{over:.0f} MB", "(no target)")


# -- 4. schema-valid decision rate --------------------------------------------------------------


async def validity(target: Target, settings: Settings, calls: int, fmt: str) -> Counter[str]:
    """``calls`` decisions, the agent's prompts, per-agent tools and sampling, one calling format; outcomes counted."""
    backend_settings = settings.backend
    config = VLLMBackendConfig(
        model_path=target.model,
        api_base=target.vllm_api_base,
        api_key=target.api_key,
        temperature=backend_settings.temperature,
        max_tokens=backend_settings.max_tokens,
        timeout_s=600,
        max_retries=0,
        tool_choice=backend_settings.function_calling.tool_choice,
        function_calling_format=fmt,
    )
    plans = [plan_call(Observation.model_validate(obs), settings) for obs in observations(calls)]
    slots = asyncio.Semaphore(VALIDITY_CONCURRENCY)
    outcomes: Counter[str] = Counter()
    backend = VLLMBackend(config)

    async def one(plan: Any) -> None:
        tools = normalize_tools(plan.tools)
        async with slots:
            result = await backend.agenerate_with_tools(
                plan.prompt,
                tools,
                system_prompt=plan.system_prompt,
                tool_choice=plan.tool_choice,
                max_tokens=plan.max_tokens,
            )
        call = result.metadata.get("tool_call")
        source = result.metadata.get("tool_call_source", "?")
        if call is None:
            outcomes[f"invalid ({source})"] += 1
            return
        problem = validate_tool_call(call["name"], call["arguments"], tools)  # again, independently of the backend
        try:
            json.dumps(call["arguments"], allow_nan=False)
        except ValueError:
            problem = problem or "NaN or Infinity"
        outcomes[f"valid ({source})" if problem is None else f"invalid ({source})"] += 1

    async with backend:
        await asyncio.gather(*(one(plan) for plan in plans))
    return outcomes


def valid_rates(target: Target, settings: Settings, calls: int, figures: Figures) -> None:
    rates = {}
    for fmt, label in (("openai", "forced strict native tool calls"), ("prompt", "prompt-only (old approach)")):
        started = time.monotonic()
        outcomes = asyncio.run(validity(target, settings, calls, fmt))
        valid = sum(count for outcome, count in outcomes.items() if outcome.startswith("valid"))
        rates[fmt] = valid / calls
        figures.add(
            f"schema-valid decisions, {label}",
            f"{valid}/{calls} ({100 * valid / calls:.0f}%)",
            f"({dict(sorted(outcomes.items()))}; {time.monotonic() - started:.0f} s)",
        )
    gain = "n/a" if rates["prompt"] == 0 else f"{rates['openai'] / rates['prompt']:.1f}x"
    figures.add(
        "valid rate, forced native - prompt-only",
        f"{100 * (rates['openai'] - rates['prompt']):+.0f} points",
        f"(ratio {gain})",
    )


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--compose-project", default="arena-vllm", help="the running stack's compose project")
    parser.add_argument("--compose-file", action="append", help="default: docker-compose.yml + docker-compose.cpu.yml")
    parser.add_argument("--env-file", help="the compose --env-file the running stack was started with")
    parser.add_argument("--agents", type=int, default=32, help="agents per /tick (and direct requests)")
    parser.add_argument("--repeats", type=int, default=3, help="timed ticks and direct batches (median kept)")
    parser.add_argument("--starts", type=int, default=1, help="warm starts of each kind (median kept)")
    parser.add_argument("--calls", type=int, default=40, help="decisions per calling format in the validity step")
    parser.add_argument("--skip", action="append", default=[], choices=["dps", "start", "images", "validity"])
    parser.add_argument(
        "--python-base",
        default=os.environ.get("PYTHON_BASE", "python:3.11-slim-bookworm"),
        help="the PYTHON_BASE build arg the images were built from (default: $PYTHON_BASE)",
    )
    args = parser.parse_args()
    settings = load_settings([*args.overrides, *env_overrides()])
    prefix = os.environ.get("ARENA_IMAGE_PREFIX", "arena-vllm")
    figures = Figures()

    with contextlib.ExitStack() as exits:
        if args.start_stack:
            stack = exits.enter_context(started_stack(args.overrides, args.stack_model))
            target = stack_target(stack)
            compose = Compose(stack.compose.compose_command_property, stack.project)
            vllm_url, agent_url = stack.vllm_url, stack.agent_url
        else:
            target = Target(args.agent_url, args.vllm_api_base, args.model or first_model(args), args.api_key)
            files = args.compose_file or compose_files("cpu")
            command = ["docker", "compose", "-p", args.compose_project, *(part for f in files for part in ("-f", f))]
            compose = Compose(command + (["--env-file", args.env_file] if args.env_file else []), args.compose_project)
            vllm_url, agent_url = args.vllm_api_base.removesuffix("/v1"), args.agent_url
        print(f"model {target.model!r} at {target.vllm_api_base}, agent {target.agent_url}", file=sys.stderr)
        if "images" not in args.skip:
            image_sizes(f"{prefix}/agent:latest", f"{prefix}/vllm:cpu", args.python_base, figures)
        if "start" not in args.skip:  # first: it leaves the stack freshly up for the rest
            warm_starts(compose, vllm_url, agent_url, args.starts, figures)
        if "dps" not in args.skip:
            asyncio.run(decisions_per_second(target, settings, args.agents, args.repeats, figures))
        if "validity" not in args.skip:
            valid_rates(target, settings, args.calls, figures)
    print(f"\narena-vllm stack benchmark: {os.cpu_count()} CPUs, model {target.model!r}, one run")
    figures.print()


if __name__ == "__main__":
    main()
