"""Decisions the game can carry out: before (the old fixed tool set) and after (per-agent schemas), on the game's own requests.

One run, against one stack, replays the foraging fixtures (tests/support/game_requests.py:
3 ticks of 16 agents, bodies as Agent Arena's scripts build them) and prints:

1. the game-executable share of decisions (``arena_vllm.agent.actions.game_problem``: a tool
   of the scene, ``collect`` of a resource in that agent's observation by its exact name and
   within collect range, ``craft_item`` of a known recipe at its station with the inputs held,
   ``move_to`` to three finite numbers in bounds):
   - *before*: straight to vLLM with the tool set this project offered until issue #8
     (``TODAY_TOOLS``: move_to, collect with ``^[a-z0-9_]{1,32}$``, idle), same user prompts;
   - *after, direct*: straight to vLLM with each agent's narrowed tools (``plan_call``);
   - *after, through the agent*: ``POST /tick`` per tick, as the game would call it;
2. prompt tokens per observation (vLLM's ``usage.prompt_tokens``) and call tokens per decision
   (``usage.completion_tokens``, with the ``max_tokens`` the offered tools give): min / median / max;
3. then bench_tick's measurement for ``--agents`` (default 32): ``/tick`` vs the same requests
   straight to vLLM, median of ``--repeats`` (default 5), with vLLM's prefix-cache hit rate.

    python -m benchmarks.bench_game --start-stack          # the test CPU stack, tiny model
    python -m benchmarks.bench_game --agent-url ... --vllm-api-base ... --model ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
from collections import Counter
from typing import Any

from arena_vllm.agent.actions import game_problem
from arena_vllm.agent.policy import plan_call
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends.chat import native_tools_request
from arena_vllm.config import Settings, env_overrides, load_settings
from arena_vllm.tool_shapes import normalize_tools
from benchmarks.bench_tick import Target, add_target_arguments, agent_client, open_target, run, vllm_client
from tests.support.game_requests import foraging_ticks

#: The tool set offered before issue #8 (configs/tools/foraging.yaml at commit 7c9f824), the baseline.
TODAY_TOOLS: list[dict[str, Any]] = [
    {
        "name": "move_to",
        "description": "Move toward a target position in the world.",
        "parameters": {
            "type": "object",
            "required": ["target_position"],
            "additionalProperties": False,
            "properties": {
                "target_position": {
                    "type": "array",
                    "description": "Target [x, y, z] position.",
                    "minItems": 3,
                    "maxItems": 3,
                    "items": {"type": "number", "minimum": -100.0, "maximum": 100.0},
                },
                "speed": {
                    "type": "number",
                    "description": "Movement speed multiplier.",
                    "minimum": 0.1,
                    "maximum": 2.0,
                },
            },
        },
    },
    {
        "name": "collect",
        "description": "Collect a nearby resource by its name.",
        "parameters": {
            "type": "object",
            "required": ["target_name"],
            "additionalProperties": False,
            "properties": {
                "target_name": {
                    "type": "string",
                    "description": "Name of the resource to collect.",
                    "pattern": "^[a-z0-9_]{1,32}$",
                }
            },
        },
    },
    {
        "name": "idle",
        "description": "Do nothing this tick.",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    },
]
TODAY_SYSTEM_PROMPT = (
    "You control one agent in a 3D foraging arena. Each turn you see the agent's state and must call exactly one "
    "tool: move_to a position, collect a nearby resource, or idle. Collect resources within reach, move toward the "
    "nearest ones otherwise, avoid hazards."
)


class Tally:
    """Executable decisions, by tool; the problems of the others (first few kept)."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.executable: Counter[str] = Counter()
        self.problems: list[str] = []

    def add(self, tool: str, params: dict[str, Any], observation: Observation, settings: Settings) -> None:
        self.total[tool] += 1
        problem = game_problem(tool, params, observation, settings)
        if problem is None:
            self.executable[tool] += 1
        elif len(self.problems) < 5:
            self.problems.append(problem)

    def line(self) -> str:
        total, ok = sum(self.total.values()), sum(self.executable.values())
        tools = ", ".join(f"{tool} {self.executable[tool]}/{n}" for tool, n in sorted(self.total.items()))
        return f"{ok}/{total} ({100 * ok / max(total, 1):.0f}%)  [{tools}]"


async def replay(target: Target, settings: Settings) -> None:
    ticks = foraging_ticks(ticks=3, agents=16)
    observations = [Observation.model_validate(body) for bodies in ticks for body in bodies]
    backend = settings.backend
    sampling = {"temperature": backend.temperature, "top_p": backend.top_p, "max_tokens": backend.max_tokens}
    today = normalize_tools(TODAY_TOOLS)
    before, after_direct, after_agent = Tally(), Tally(), Tally()
    prompt_tokens: list[int] = []
    call_tokens: list[int] = []
    sources: Counter[str] = Counter()
    fallback_reasons: Counter[str] = Counter()
    vllm = vllm_client(target)

    bounds = [plan_call(observation, settings).max_tokens for observation in observations]

    async def direct(observation: Observation, new: bool) -> None:
        plan = plan_call(observation, settings)
        if new:
            request = native_tools_request(
                target.model,
                plan.prompt,
                plan.system_prompt,
                normalize_tools(plan.tools),
                plan.tool_choice,
                {**sampling, "max_tokens": plan.max_tokens},
            )
        else:
            request = native_tools_request(target.model, plan.prompt, TODAY_SYSTEM_PROMPT, today, "required", sampling)
        response = await vllm.chat.completions.create(**request)
        calls = response.choices[0].message.tool_calls or []
        tally = after_direct if new else before
        if new and response.usage is not None:
            prompt_tokens.append(response.usage.prompt_tokens)
            call_tokens.append(response.usage.completion_tokens)
        if not calls:
            tally.total["<no call>"] += 1
            return
        try:
            arguments = json.loads(calls[0].function.arguments or "{}")
        except json.JSONDecodeError:
            tally.total["<bad json>"] += 1
            return
        tally.add(calls[0].function.name, arguments, observation, settings)

    try:
        for new in (False, True):
            for tick in range(3):  # one tick's agents at once, as the service sends them
                await asyncio.gather(*(direct(o, new) for o in observations[16 * tick : 16 * (tick + 1)]))
        async with agent_client(target) as http:
            for tick, bodies in enumerate(ticks, start=1):
                agents = [{"agent_id": body["agent_id"], "observations": body} for body in bodies]
                response = await http.post("/tick", json={"tick": tick, "agents": agents})
                response.raise_for_status()
                for body, action in zip(bodies, response.json()["actions"]):
                    decision = action["action"]
                    sources[decision["source"]] += 1
                    if decision["source"] not in ("native", "prompt"):
                        fallback_reasons[decision["reasoning"][:160]] += 1
                    after_agent.add(decision["tool"], decision["params"], Observation.model_validate(body), settings)
    finally:
        await vllm.close()

    print(f"\ngame-executable decisions, foraging replay (3 ticks x 16 agents, model {target.model!r})")
    print(f"  {'before: old tool set, straight to vLLM':<44} {before.line()}")
    print(f"  {'after: per-agent schemas, straight to vLLM':<44} {after_direct.line()}")
    print(f"  {'after: through the agent (/tick)':<44} {after_agent.line()}  sources {dict(sources)}")
    if before.problems:
        print(f"  e.g. before: {before.problems[0]}")
    if after_agent.problems:
        print(f"  e.g. after: {after_agent.problems[0]}")
    for reason, count in fallback_reasons.most_common(3):
        print(f"  fallback x{count}: {reason}")
    print(
        f"prompt tokens per observation (system + tools + user, {len(prompt_tokens)} requests): "
        f"min {min(prompt_tokens)}, median {statistics.median(prompt_tokens):.0f}, max {max(prompt_tokens)}"
    )
    print(
        f"call tokens per decision (generated, same requests; max_tokens from the offered tools {min(bounds)}-{max(bounds)}): "
        f"min {min(call_tokens)}, median {statistics.median(call_tokens):.0f}, max {max(call_tokens)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--agents", type=int, default=32, help="agents in the /tick vs direct measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings([*args.overrides, *env_overrides()])
    with contextlib.ExitStack() as stack:
        target = open_target(args, stack)
        asyncio.run(replay(target, settings))
        print(f"\n/tick of {args.agents} vs the same requests straight to vLLM", file=sys.stderr)
        asyncio.run(run(target, settings, args.agents, args.repeats))


if __name__ == "__main__":
    main()
