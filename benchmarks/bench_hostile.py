"""Prompt size under hostile input: the corpus of tests/support/hostile.py against a stack, with the game's replay as baseline.

One run prints, for the accepted hostile observations and for the foraging replay
(tests/support/game_requests.py, 3 ticks x 16 agents) as the baseline measured in the same run:

1. the request size ``agent.prompt_budget_bytes`` bounds (system + tools + user prompt, bytes),
   p50 / max, and what it would be with the budget off (the lists' caps still on);
2. prompt tokens from vLLM's ``usage.prompt_tokens`` for the same requests sent straight to
   vLLM (p50 / max; requests vLLM refuses, e.g. over the model's context, are counted), and the
   largest tokens / bytes of one request (chat template included);
3. what the agent answered each hostile case (``POST`` as the game would): status, source.

    python -m benchmarks.bench_hostile --start-stack      # the test CPU stack, tiny model
    python -m benchmarks.bench_hostile --agent-url ... --vllm-api-base ... --model ...
    python -m benchmarks.bench_hostile --offline          # bytes only, no stack
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
from collections import Counter
from typing import Any

from openai import APIStatusError

from arena_vllm.agent.bounds import InputLimits, limits_in_force
from arena_vllm.agent.policy import CallPlan, plan_call
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends.chat import native_tools_request
from arena_vllm.config import Settings, env_overrides, load_settings
from arena_vllm.tool_shapes import normalize_tools
from benchmarks.bench_tick import Target, add_target_arguments, agent_client, open_target, vllm_client
from tests.support.game_requests import foraging_ticks
from tests.support.hostile import accepted, hostile_corpus


def hostile_observations(settings: Settings) -> list[Observation]:
    """Every observation of the accepted hostile cases (a /tick case gives one per perception)."""
    observations = []
    with limits_in_force(InputLimits.from_settings(settings)):
        for case in accepted():
            body = json.loads(case.body)
            for sent in body.get("perceptions") or [body]:
                observations.append(Observation.model_validate({"tick": body.get("tick", 0), **sent}))
    return observations


def replay_observations() -> list[Observation]:
    return [Observation.model_validate(body) for bodies in foraging_ticks(ticks=3, agents=16) for body in bodies]


def spread(values: list[int]) -> str:
    return f"p50 {statistics.median(values):.0f}, max {max(values)}" if values else "none"


async def prompt_tokens(
    target: Target, settings: Settings, plans: list[CallPlan]
) -> tuple[list[int], Counter[str], float]:
    """vLLM's prompt tokens for each plan sent straight to it, refusals counted by status, and the
    largest tokens / bytes ratio of one request (<= 1: the byte budget bounded its tokens)."""
    backend = settings.backend
    sampling = {"temperature": backend.temperature, "top_p": backend.top_p, "max_tokens": backend.max_tokens}
    vllm = vllm_client(target)
    tokens: list[int] = []
    ratios: list[float] = []
    refused: Counter[str] = Counter()

    async def one(plan: CallPlan) -> None:
        request = native_tools_request(
            target.model, plan.prompt, plan.system_prompt, normalize_tools(plan.tools), plan.tool_choice, sampling
        )
        try:
            response = await vllm.chat.completions.create(**request)
        except APIStatusError as exc:
            refused[f"HTTP {exc.status_code}"] += 1
            return
        if response.usage is not None:
            tokens.append(response.usage.prompt_tokens)
            ratios.append(response.usage.prompt_tokens / plan.size_bytes)

    try:
        await asyncio.gather(*(one(plan) for plan in plans))
    finally:
        await vllm.close()
    return tokens, refused, max(ratios, default=0.0)


async def through_agent(target: Target) -> list[tuple[str, int, str]]:
    """Each hostile case POSTed to the agent: (id, status, sources of its decisions)."""
    answers = []
    async with agent_client(target) as http:
        for case in hostile_corpus():
            for event in case.experiences:
                await http.post("/experience", json=event)
            response = await http.post(case.path, content=case.body, headers={"content-type": "application/json"})
            sources = ""
            if response.status_code == 200:
                body: Any = response.json()
                sources = ",".join(sorted({a.get("source", "") for a in body.get("actions", [body])}))
            answers.append((case.id, response.status_code, sources))
    return answers


def report_bytes(settings: Settings, groups: dict[str, list[Observation]]) -> dict[str, list[CallPlan]]:
    budget = settings.agent.prompt_budget_bytes
    unbounded = settings.model_copy(update={"agent": settings.agent.model_copy(update={"prompt_budget_bytes": 10**9})})
    plans = {}
    print(f"request bytes (system + tools + user), agent.prompt_budget_bytes = {budget}")
    for name, observations in groups.items():
        plans[name] = [plan_call(o, settings) for o in observations]
        within = [plan.size_bytes for plan in plans[name]]
        without = [plan_call(o, unbounded).size_bytes for o in observations]
        print(f"  {name:<28} {len(observations):>3} observations  {spread(within)}  (budget off: {spread(without)})")
        if max(within) > budget:
            print(f"  OVER BUDGET: {name} max {max(within)} > {budget}")
    return plans


async def measure(target: Target, settings: Settings, plans: dict[str, list[CallPlan]]) -> None:
    print(f"\nprompt tokens (vLLM usage.prompt_tokens, model {target.model!r})")
    for name, group in plans.items():
        tokens, refused, ratio = await prompt_tokens(target, settings, group)
        note = f"; refused {dict(refused)}" if refused else ""
        print(f"  {name:<28} {spread(tokens)}  ({len(tokens)} answered{note}; max tokens/bytes {ratio:.2f})")
    print("\nthrough the agent (status, decision sources)")
    answers = await through_agent(target)
    by_status = Counter(status for _, status, _ in answers)
    print(
        f"  statuses {dict(sorted(by_status.items()))}; decided: "
        + ", ".join(f"{case_id} [{sources}]" for case_id, status, sources in answers if status == 200)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--offline", action="store_true", help="request bytes only, no stack")
    args = parser.parse_args()
    settings = load_settings([*args.overrides, *env_overrides()])
    plans = report_bytes(
        settings,
        {
            "baseline: foraging replay": replay_observations(),
            "hostile corpus (accepted)": hostile_observations(settings),
        },
    )
    if args.offline:
        return
    with contextlib.ExitStack() as stack:
        target = open_target(args, stack)
        asyncio.run(measure(target, settings, plans))


if __name__ == "__main__":
    main()
