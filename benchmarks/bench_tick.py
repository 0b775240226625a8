"""How much a /tick costs next to the engine alone, and next to deciding agents one after another.

One run, against one vLLM server, measures:

1. one single-agent decision (``POST /observe``);
2. a ``POST /tick`` of N agents (the agent service decides them concurrently);
3. the same N chat requests sent straight to vLLM at once (``AsyncOpenAI``): the engine's own
   limit. They are built by the same code the service uses (``plan_call``: the scene's system
   prompt, each agent's prompt and its own narrowed tools; the backend's ``native_tools_request``),
   with the same tool_choice and sampling;
4. N ``/observe`` calls one after another, as Agent Arena's own server decided a tick.

Each is warmed up, then repeated (interleaved, so drift hits all alike) and the median kept.
vLLM's prefix-cache hit rate (``vllm:prefix_cache_hits`` / ``queries`` over the step) is printed
for the tick and the direct requests: the shared system prompt and tool list should be cached.
The observations are the replay fixtures' foraging bodies (tests/support/game_requests.py).
Targets: tick / direct <= 1.1 (the service adds almost nothing); sequential / tick as large as
the engine's batching allows (~2x on a 2-core CPU, far more on a GPU).

Start the stack first (the agent with a deadline long enough for a CPU tick), e.g.::

    AGENT_OVERRIDES=agent.tick_deadline_s=300 arena-vllm up --cpu
    python -m benchmarks.bench_tick --agent-url http://127.0.0.1:5000 \\
        --vllm-api-base http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-0.5B-Instruct --agents 32

or let the script start (and remove) the test CPU stack with its tiny model (from the
repository root, like every benchmark)::

    python -m benchmarks.bench_tick --start-stack --agents 32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from arena_vllm.agent.policy import plan_call
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends.chat import native_tools_request, schema_tools_request, tools_for_choice
from arena_vllm.backends.vllm import CONNECTION_LIMITS
from arena_vllm.config import Settings, env_overrides, load_settings
from arena_vllm.tool_shapes import normalize_tools
from tests.support.game_requests import foraging_ticks
from tests.support.stack import MODELS, Stack, StackBuildError, start_stack

#: One request timeout for everything: a CPU engine under a tick of 32 is slow, and a timeout
#: here would measure the timeout, not the engine.
TIMEOUT_S = 600.0
TICK_TARGET = 1.1
#: A decision's structured ``source`` when the model made it (not the agent's fallback).
MODEL_SOURCES = frozenset({"native", "prompt"})


def by_model(decision: dict[str, Any]) -> bool:
    """Whether the model made this decision (its ``source`` field)."""
    return decision.get("source") in MODEL_SOURCES


@dataclass
class Target:
    """Where to send: the agent service, and the vLLM server behind it."""

    agent_url: str
    vllm_api_base: str
    model: str
    api_key: str


def observations(count: int) -> list[dict[str, Any]]:
    """``count`` foraging ``/observe`` bodies of one tick, as the game builds them, each agent elsewhere."""
    return foraging_ticks(ticks=1, agents=count)[0]


def direct_request(model: str, observation: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The chat request the agent service sends for this observation (same plan, tools and sampling)."""
    plan = plan_call(Observation.model_validate(observation), settings)
    backend = settings.backend
    sampling = {"temperature": backend.temperature, "top_p": backend.top_p, "max_tokens": plan.max_tokens}
    tools = normalize_tools(plan.tools)
    if backend.function_calling.format == "schema":  # the backend's shape for this format (VLLMBackend._tool_exchange)
        return schema_tools_request(
            model, plan.prompt, plan.system_prompt, tools_for_choice(tools, plan.tool_choice), sampling
        )
    return native_tools_request(model, plan.prompt, plan.system_prompt, tools, plan.tool_choice, sampling)


async def vllm_counters(http: httpx.AsyncClient, metrics_url: str, auth: dict[str, str]) -> dict[str, float]:
    """vLLM's generation-token, finished-request and prefix-cache counters (summed over label sets)."""
    response = await http.get(metrics_url, headers=auth)
    response.raise_for_status()
    wanted = {
        "vllm:generation_tokens_total": "generated",
        "vllm:prefix_cache_queries_total": "queries",
        "vllm:prefix_cache_hits_total": "hits",
        "vllm:request_success_total": "requests",
    }
    counters = dict.fromkeys(wanted.values(), 0.0)
    counters["cut"] = 0.0  # requests that ended at max_tokens (finished_reason="length")
    for line in response.text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        value = float(line.rsplit(" ", 1)[1]) if not line.startswith("#") else 0.0
        if name in wanted:
            counters[wanted[name]] += value
        if name == "vllm:request_success_total" and 'finished_reason="length"' in line:
            counters["cut"] += value
        if name == "vllm:request_generation_tokens_bucket":  # cumulative: finished requests of <= le tokens
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            counters[f"{GENERATED_LE}{bound}"] = counters.get(f"{GENERATED_LE}{bound}", 0.0) + value
    return counters


#: Key prefix of vLLM's generated-tokens-per-request histogram buckets in :func:`vllm_counters`.
GENERATED_LE = "generated<="


def longest_call(before: dict[str, float], after: dict[str, float]) -> str:
    """The histogram bound on the longest generation between two readings: a tick waits for its slowest agent."""
    bounds = sorted((float(k.removeprefix(GENERATED_LE)), k) for k in after if k.startswith(GENERATED_LE))
    if not bounds:
        return "?"
    finished = after[bounds[-1][1]] - before.get(bounds[-1][1], 0.0)
    for bound, key in bounds:
        if after[key] - before.get(key, 0.0) >= finished:
            return f"<={bound:g}"
    return "?"


class Bench:
    """The four measurements, sharing clients and the precomputed direct requests."""

    def __init__(self, target: Target, settings: Settings, agents: int) -> None:
        self.target = target
        self.observations = observations(agents)
        self.direct_requests = [direct_request(target.model, obs, settings) for obs in self.observations]
        self.http = agent_client(target, connections=agents + 8)
        self.vllm = vllm_client(target)
        self.model_decisions: list[int] = []  # per tick: actions the model made (not idle after a failure)
        self.sources: list[Counter[str]] = []  # per tick: decisions by source (native, prompt, ...)
        self.metrics_url = target.vllm_api_base.removesuffix("/v1") + "/metrics"
        self.auth = {"Authorization": f"Bearer {target.api_key}"}

    async def counters(self) -> dict[str, float]:
        """vLLM's counters: generated tokens (the work a step asked of the engine) and prefix-cache use."""
        return await vllm_counters(self.http, self.metrics_url, self.auth)

    async def close(self) -> None:
        await self.http.aclose()
        await self.vllm.close()

    async def single(self) -> None:
        (await self.http.post("/observe", json=self.observations[0])).raise_for_status()

    async def tick(self) -> None:
        agents = [{"agent_id": obs["agent_id"], "observations": obs} for obs in self.observations]
        response = await self.http.post("/tick", json={"tick": 1, "agents": agents})
        response.raise_for_status()
        actions = response.json()["actions"]
        self.model_decisions.append(sum(by_model(a["action"]) for a in actions))
        self.sources.append(Counter(a["action"].get("source", "?") for a in actions))

    async def direct(self) -> None:
        await asyncio.gather(*(self.vllm.chat.completions.create(**request) for request in self.direct_requests))

    async def sequential(self) -> None:
        for obs in self.observations:
            (await self.http.post("/observe", json=obs)).raise_for_status()


#: Token counts of two paths further apart than this are not the same work.
TOKEN_TOLERANCE = 0.05


def comparable(agents: int, model_decisions: list[int], tokens_a: float, tokens_b: float) -> str | None:
    """None when both sides did equal work, else why not: a ratio is a verdict only on equal work.

    Equal work: every tick had all ``agents`` decided by the model (an idle after a failure is
    cheap, and would flatter the agent), and the engine generated the same tokens within 5%.
    """
    short = [count for count in model_decisions if count < agents]
    if not model_decisions or short:
        return f"not comparable: model decisions per tick {model_decisions}, expected {agents} each"
    if max(tokens_a, tokens_b) <= 0:
        return "not comparable: no generated tokens counted (vLLM /metrics)"
    spread = abs(tokens_a - tokens_b) / max(tokens_a, tokens_b)
    if spread > TOKEN_TOLERANCE:
        return (
            f"not comparable: generated tokens differ by {spread:.0%} ({tokens_a:.0f} vs {tokens_b:.0f}; "
            f"at most {TOKEN_TOLERANCE:.0%})"
        )
    return None


def hit_share(hits: float, queries: float) -> float:
    """The share of prompt tokens vLLM served from its prefix cache (NaN when none were asked)."""
    return hits / queries if queries else float("nan")


async def timed(step: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


async def run(target: Target, settings: Settings, agents: int, repeats: int, sequential: bool = True) -> dict[str, Any]:
    """The four steps (three without ``sequential``: N in a row takes N single decisions' time), printed
    per repeat; returns the medians, tokens and per-repeat times for callers (bench_gpu)."""
    bench = Bench(target, settings, agents)
    steps = {"single": bench.single, "tick": bench.tick, "direct": bench.direct, "sequential": bench.sequential}
    if not sequential:
        del steps["sequential"]
    try:
        print(f"warming up ({agents} agents, model {target.model!r})", file=sys.stderr)
        for name in ("single", "direct", "tick"):
            await steps[name]()
        bench.model_decisions.clear()
        bench.sources.clear()
        times: dict[str, list[float]] = {name: [] for name in steps}
        tokens: dict[str, list[float]] = {name: [] for name in steps}
        requests: dict[str, list[float]] = {name: [] for name in steps}  # > N: some calls went to the prompt path
        cache = {name: {"hits": 0.0, "queries": 0.0} for name in steps}
        step_hits: dict[str, float] = {}  # this repeat's prefix-cache hit rate per step
        cut: dict[str, float] = {}  # this repeat's requests cut at max_tokens per step
        longest: dict[str, str] = {}  # this repeat's longest generation per step (a histogram bound)
        for repeat in range(repeats):
            for name, step in steps.items():
                before = await bench.counters()
                times[name].append(await timed(step))
                after = await bench.counters()
                tokens[name].append(after["generated"] - before["generated"])
                requests[name].append(after["requests"] - before["requests"])
                cut[name], longest[name] = after["cut"] - before["cut"], longest_call(before, after)
                for key in ("hits", "queries"):
                    cache[name][key] += after[key] - before[key]
                step_hits[name] = hit_share(after["hits"] - before["hits"], after["queries"] - before["queries"])
            print(
                f"repeat {repeat + 1}/{repeats}: "
                + ", ".join(
                    f"{k} {v[-1]:.2f} s ({tokens[k][-1]:.0f} tokens, {requests[k][-1]:.0f} requests, "
                    f"{cut[k]:.0f} cut, longest {longest[k]})"
                    for k, v in times.items()
                )
                + f"; tick/direct {times['tick'][-1] / times['direct'][-1]:.3f}"
                + f"; tick sources {dict(bench.sources[-1])}"
                + f"; prefix-cache hits tick {step_hits['tick']:.0%}, direct {step_hits['direct']:.0%}"
                + f"; load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
    finally:
        await bench.close()
    hit_rate = {name: hit_share(c["hits"], c["queries"]) for name, c in cache.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    median_tokens = {name: statistics.median(values) for name, values in tokens.items()}
    report(median, median_tokens, agents, repeats, bench.model_decisions, hit_rate)
    return {
        "median": median,
        "tokens": median_tokens,
        "times": times,
        "model_decisions": bench.model_decisions,
        "hit_rate": hit_rate,
    }


def report(
    median: dict[str, float],
    tokens: dict[str, float],
    agents: int,
    repeats: int,
    model_decisions: list[int],
    hit_rate: dict[str, float],
) -> None:
    tick_ratio = median["tick"] / median["direct"]
    verdict = comparable(agents, model_decisions, tokens["tick"], tokens["direct"]) or (
        "ok" if tick_ratio <= TICK_TARGET else "OVER TARGET"
    )
    rows = [
        ("one /observe", f"{median['single']:.3f} s"),
        (
            f"/tick of {agents}",
            f"{median['tick']:.3f} s  ({tokens['tick']:.0f} tokens generated; "
            + f"model decisions per tick: {model_decisions})",
        ),
        (
            f"{agents} requests straight to vLLM, at once",
            f"{median['direct']:.3f} s  ({tokens['direct']:.0f} tokens generated)",
        ),
        (
            f"{agents} /observe one after another",
            f"{median['sequential']:.3f} s" if "sequential" in median else "skipped",
        ),
        ("tick / direct concurrent", f"{tick_ratio:.3f}  (target <= {TICK_TARGET}: {verdict})"),
        ("sequential / tick", f"{median['sequential'] / median['tick']:.2f}x" if "sequential" in median else "skipped"),
        (
            "vLLM prefix-cache hit rate",
            f"tick {hit_rate['tick']:.1%}, direct {hit_rate['direct']:.1%} (prompt tokens served from the cache)",
        ),
    ]
    print(f"\nmedian of {repeats} runs, {agents} agents")
    for label, value in rows:
        print(f"  {label:<40} {value}")
    if any(count < agents for count in model_decisions):
        print(
            "warning: some agents got idle after a failure (deadline?): raise agent.tick_deadline_s (AGENT_OVERRIDES)",
            file=sys.stderr,
        )


def agent_client(target: Target, connections: int = 100) -> httpx.AsyncClient:
    """The game's side; idle connections dropped before the agent's uvicorn drops them (5 s, as vLLM's)."""
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=CONNECTION_LIMITS.keepalive_expiry,
    )
    return httpx.AsyncClient(base_url=target.agent_url, timeout=TIMEOUT_S, limits=limits)


def vllm_client(target: Target) -> AsyncOpenAI:
    """The direct client: no retries (a failure shows), idle connections dropped before the server drops them."""
    return AsyncOpenAI(
        base_url=target.vllm_api_base,
        api_key=target.api_key,
        max_retries=0,
        timeout=TIMEOUT_S,
        http_client=DefaultAsyncHttpxClient(timeout=TIMEOUT_S, limits=CONNECTION_LIMITS),
    )


@contextlib.contextmanager
def started_stack(overrides: Sequence[str] = (), model: str = "tiny") -> Iterator[Stack]:
    """The test CPU stack (``model``: tiny, or smollm2 for the real one), with a deadline long enough for a CPU
    tick; removed afterwards."""
    # Compose interpolates AGENT_OVERRIDES from the environment; the agent runs with the same
    # overrides the direct requests are built with, and a deadline long enough unless one is given.
    agent_overrides = [os.environ.get("AGENT_OVERRIDES", ""), *overrides]
    if "agent.tick_deadline_s=" not in " ".join(agent_overrides):
        agent_overrides.insert(0, "agent.tick_deadline_s=600")
    os.environ["AGENT_OVERRIDES"] = " ".join(agent_overrides).strip()
    with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as exits:
        try:
            stack = exits.enter_context(start_stack(Path(workdir), "cpu", model=model))
        except StackBuildError as exc:
            sys.exit(f"{Path(sys.argv[0]).stem}: {exc.one_line}")
        yield stack


def stack_target(stack: Stack) -> Target:
    return Target(stack.agent_url, stack.vllm_api_base, stack.served_model, stack.api_key)


def open_target(args: argparse.Namespace, resources: contextlib.ExitStack) -> Target:
    """The test stack's addresses with ``--start-stack`` (started inside ``resources``), else the ones given."""
    if args.start_stack:
        return stack_target(resources.enter_context(started_stack(args.overrides, args.stack_model)))
    return Target(args.agent_url, args.vllm_api_base, args.model or first_model(args), args.api_key)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a running stack is, or ``--start-stack``, and the agent's Hydra overrides: what :func:`open_target`
    reads (shared by bench_game, bench_hostile and bench_stack)."""
    parser.add_argument("--agent-url", default="http://127.0.0.1:5000")
    parser.add_argument("--vllm-api-base", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="", help="served model name (default: the first the server lists)")
    parser.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY", "EMPTY"), help="default: $VLLM_API_KEY")
    parser.add_argument("--start-stack", action="store_true", help="start the test CPU stack (Docker) and remove it")
    parser.add_argument(
        "--stack-model",
        choices=sorted(MODELS),
        default="tiny",
        help="what --start-stack serves: the tiny random model, or smollm2 (real, from PyPI)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides the agent service runs with, e.g. backend.max_tokens=64"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-sequential", action="store_true", help="skip the N-in-a-row step (N x one decision)")
    args = parser.parse_args()
    settings = load_settings([*args.overrides, *env_overrides()])

    with contextlib.ExitStack() as stack:
        target = open_target(args, stack)
        asyncio.run(run(target, settings, args.agents, args.repeats, not args.no_sequential))


def first_model(args: argparse.Namespace) -> str:
    """The served model, as the agent service picks it when none is configured."""
    response = httpx.get(
        f"{args.vllm_api_base}/models", headers={"Authorization": f"Bearer {args.api_key}"}, timeout=30
    )
    response.raise_for_status()
    return response.json()["data"][0]["id"]


if __name__ == "__main__":
    main()
