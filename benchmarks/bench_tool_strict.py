"""Schema-valid tool-call rate of a running vLLM, with the project's tools sent ``strict: true`` (as the
backend sends them) and ``strict: false`` (as a client that does not ask for it would).

vLLM 0.32's ``--tool-strict-level parameter`` pins the argument schema for every tool, strict or not; run
this against a server started with and without that flag to see what the flag changes::

    python -m benchmarks.bench_tool_strict --api-base http://127.0.0.1:8000/v1 --calls 60

Forced calls (``tool_choice: required``, one call), the agent's prompts, the backend group's sampling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter

import jsonschema
from openai import AsyncOpenAI

from arena_vllm.agent.prompt import render_observation
from arena_vllm.agent.schemas import Observation
from arena_vllm.backends.tools import normalize_tools
from arena_vllm.config import load_settings
from bench_tick import observations


async def rate(client: AsyncOpenAI, model: str, strict: bool, calls: int) -> Counter[str]:
    """``calls`` forced tool calls; outcomes: valid, no call, bad JSON, unknown tool, schema error."""
    settings = load_settings()
    tools = normalize_tools(settings.tools.tools)
    for tool in tools:
        tool["function"]["strict"] = strict
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in tools}
    prompts = [render_observation(Observation.model_validate(obs), settings.agent.max_entities_in_prompt)
               for obs in observations(calls)]
    slots = asyncio.Semaphore(8)
    outcomes: Counter[str] = Counter()

    async def one(prompt: str) -> None:
        async with slots:
            reply = await client.chat.completions.create(
                model=model, tools=tools, tool_choice="required", parallel_tool_calls=False,
                messages=[{"role": "system", "content": settings.agent.system_prompt},
                          {"role": "user", "content": prompt}],
                temperature=settings.backend.temperature, max_tokens=settings.backend.max_tokens)
        calls_made = reply.choices[0].message.tool_calls or []
        if not calls_made:
            outcomes["no call"] += 1
            return
        function = calls_made[0].function
        try:
            arguments = json.loads(function.arguments)
        except json.JSONDecodeError:
            outcomes["bad JSON"] += 1
            return
        if function.name not in schemas:
            outcomes["unknown tool"] += 1
            return
        try:
            jsonschema.validate(arguments, schemas[function.name])
        except jsonschema.ValidationError:
            outcomes["schema error"] += 1
            return
        outcomes["valid"] += 1

    await asyncio.gather(*(one(prompt) for prompt in prompts))
    return outcomes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default="EMPTY")
    parser.add_argument("--model", default="", help="served model name (default: the one served)")
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args()
    client = AsyncOpenAI(base_url=args.api_base, api_key=args.api_key, timeout=600, max_retries=0)
    model = args.model or (await client.models.list()).data[0].id
    for strict in (True, False):
        outcomes = await rate(client, model, strict, args.calls)
        print(f"strict={str(strict).lower():5}  valid {outcomes['valid']}/{args.calls}  {dict(outcomes)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
