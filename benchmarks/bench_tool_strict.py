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

from arena_vllm.config import load_settings
from benchmarks.bench_tick import direct_request, observations


async def rate(client: AsyncOpenAI, model: str, strict: bool, calls: int) -> Counter[str]:
    """``calls`` forced tool calls; outcomes: valid, no call, bad JSON, unknown tool, schema error.

    Each request is the one the agent sends for that observation (:func:`direct_request`: the
    scene's system prompt, the agent's own narrowed tools, the backend's sampling), with only the
    tools' ``strict`` flag changed.
    """
    settings = load_settings(
        ["backend.function_calling.format=openai"]
    )  # native tools: their strict flag is the subject
    requests = [direct_request(model, observation, settings) for observation in observations(calls)]
    slots = asyncio.Semaphore(8)
    outcomes: Counter[str] = Counter()

    async def one(request: dict) -> None:
        tools = [{**tool, "function": {**tool["function"], "strict": strict}} for tool in request["tools"]]
        schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in tools}
        async with slots:
            reply = await client.chat.completions.create(**{**request, "tools": tools})
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

    await asyncio.gather(*(one(request) for request in requests))
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
