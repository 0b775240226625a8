"""Closed-loop episodes: the stack plays seeded layouts under Agent Arena's rules, scored against baselines in the same run.

Each run plays ``--layouts`` layouts (3 resources, 1-2 hazards each) for ``--ticks`` ticks under
``--rules`` (``mockarena``: the SDK's MockArena; ``foraging``: the foraging scene's own; ``both``),
once per policy: the stack (one ``POST /tick`` per tick with every layout's agent), the SDK's
beginner starter, the agent's own fallback heuristic, and idle (tests/support/arena_world.py,
tests/support/episodes.py). Every run is printed, then a table of medians. ``--scenarios``
adds the SDK's six eval scenarios, 3 draws each, judged by the rubric beside each.

    python -m benchmarks.bench_episodes --offline --rules both            # baselines only, no engine
    python -m benchmarks.bench_episodes --start-stack --layouts 8 --ticks 20 --runs 3 --scenarios
    python -m benchmarks.bench_episodes --agent-url http://127.0.0.1:5000 \\
        --vllm-api-base http://127.0.0.1:8000/v1 --rules both --json episodes.json

The agent's deadline must fit a tick of all layouts on the engine (``agent.tick_deadline_s``;
``--start-stack`` sets 600 s): a late agent gets the fallback, counted under its ``source``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from arena_vllm.config import Settings, env_overrides, load_settings
from benchmarks.bench_tick import Target, add_target_arguments, agent_client, open_target, vllm_counters
from tests.support.arena_world import RULES, make_layouts
from tests.support.episodes import (
    SCENARIOS,
    BeginnerPolicy,
    FallbackPolicy,
    IdlePolicy,
    Policy,
    RunResult,
    ScenarioResult,
    StackPolicy,
    eval_scenarios,
    play,
    summary,
)


def baselines(settings: Settings) -> list[Policy]:
    return [BeginnerPolicy(), FallbackPolicy(settings), IdlePolicy()]


async def bench(args: argparse.Namespace, settings: Settings, target: Target | None) -> dict[str, Any]:
    layouts = make_layouts(args.layouts, seed=args.seed)
    rules = list(RULES) if args.rules == "both" else [args.rules]
    http = agent_client(target, connections=args.layouts + 8) if target else None
    policies: list[Policy] = ([StackPolicy(http)] if http else []) + baselines(settings)
    counters = None
    if target and http:
        metrics_url = target.vllm_api_base.removesuffix("/v1") + "/metrics"
        auth = {"Authorization": f"Bearer {target.api_key}"}

        async def counters() -> dict[str, float]:
            return await vllm_counters(http, metrics_url, auth)

    results: list[RunResult] = []
    scenario_results: dict[str, list[ScenarioResult]] = {}
    try:
        for rule_set in rules:
            for run in range(1, args.runs + 1):
                for policy in policies:
                    stack = policy.name == "stack"
                    result = await play(
                        policy,
                        rule_set,
                        layouts,
                        args.ticks,
                        run,
                        counters if stack else None,
                        progress(rule_set, args.ticks) if stack else None,
                    )
                    results.append(result)
                    print(result.line(), flush=True)
                    for example in result.problem_examples[:2]:
                        print(f"    not executable: {example}", flush=True)
        if args.scenarios:
            print(f"\nthe SDK's eval scenarios (python/evals/eval_agent.py), {args.draws} draws each, good by majority")
            for policy in policies:
                scenario_results[policy.name] = await eval_scenarios(policy, args.draws)
                good = sum(s.passed for s in scenario_results[policy.name])
                print(f"{policy.name}: {good} of {len(SCENARIOS)} good")
                for line in (s.line() for s in scenario_results[policy.name]):
                    print(line)
    finally:
        if http:
            await http.aclose()
    print(f"\nmedian over {args.runs} run(s), {args.layouts} layouts x {args.ticks} ticks (seed {args.seed})")
    for line in summary(results):
        print(line)
    for line in verdicts(results):
        print(line)
    return {
        "layouts": args.layouts,
        "ticks": args.ticks,
        "runs": args.runs,
        "seed": args.seed,
        "runs_detail": [r.as_dict() for r in results],
        "scenarios": {
            name: [
                {
                    "scenario": s.scenario,
                    "rubric": s.rubric,
                    "good": s.good,
                    "passed": s.passed,
                    "decisions": s.decisions,
                }
                for s in found
            ]
            for name, found in scenario_results.items()
        },
    }


def progress(rules: str, ticks: int):
    """A stderr line per stack tick: a CPU run takes minutes."""
    return lambda tick, seconds: print(
        f"  {rules} stack tick {tick + 1}/{ticks}: {seconds:.1f} s", file=sys.stderr, flush=True
    )


def verdicts(results: list[RunResult]) -> list[str]:
    """The stack against the beginner rules and against idle, per rule set (issue 19's first line)."""
    lines = []
    for rule_set in dict.fromkeys(r.rules for r in results):

        def median(policy: str, figure: str) -> float | None:
            values = [getattr(r, figure) for r in results if r.rules == rule_set and r.policy == policy]
            return statistics.median(values) if values else None

        stack, beginner, idle = (median(p, "collected") for p in ("stack", "beginner", "idle"))
        if stack is None:
            continue
        hurt = {p: median(p, "damage") for p in ("stack", "beginner", "idle")}
        lines.append(
            f"{rule_set}: stack {stack:.0f} resources / {hurt['stack']:.0f} damage; beginner {beginner:.0f} / "
            f"{hurt['beginner']:.0f} ({'at least as good' if stack >= beginner and hurt['stack'] <= hurt['beginner'] else 'worse'}); "
            f"idle {idle:.0f} / {hurt['idle']:.0f} ({'not worse' if stack >= idle and hurt['stack'] <= hurt['idle'] else 'WORSE'})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--offline", action="store_true", help="baselines only (beginner, fallback, idle): no stack")
    parser.add_argument("--layouts", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="layout seed")
    parser.add_argument("--rules", choices=[*RULES, "both"], default="mockarena")
    parser.add_argument("--scenarios", action="store_true", help="also the SDK's six eval scenarios")
    parser.add_argument("--draws", type=int, default=3, help="draws per eval scenario")
    parser.add_argument("--json", type=Path, help="write every run and scenario here")
    args = parser.parse_args()
    settings = load_settings([*args.overrides, *env_overrides()])
    with contextlib.ExitStack() as resources:
        target = None if args.offline else open_target(args, resources)
        report = asyncio.run(bench(args, settings, target))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
