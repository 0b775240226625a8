"""Decisions per second through the agent with 2 vLLM replicas, then with 1, in one run on one stack.

The stack is the test CPU stack plus ``ops replicas --cpu --count 2``. Phase one times ticks
with both replicas serving; then ``vllm-1`` is stopped, the agent's pool notices (``/ready``
lists it down) and the same ticks are timed against ``vllm`` alone. Same agent process, same
model, same observations; the ratio is what a second replica buys on this machine.

On a 2-core CPU both engines share the same cores, so expect ~1x (or less: two engines
compete for them); on a host with one GPU per replica the engines do not share.

Run from the repository root (Docker; takes the shared lock as every stack run must)::

    flock /tmp/arena-docker.lock python -m benchmarks.bench_replicas --agents 16 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ops.replicas import write_override
from tests.support.observations import OBSERVATION
from tests.support.stack import Stack, StackBuildError, start_stack

TIMEOUT_S = 600.0


def tick_body(agents: int, number: int) -> dict[str, Any]:
    return {
        "tick": number,
        "agents": [
            {
                "agent_id": f"b{i}",
                "observations": {**OBSERVATION, "agent_id": f"b{i}", "position": [float(i), 0.0, 0.0]},
            }
            for i in range(agents)
        ],
    }


def timed_ticks(client: httpx.Client, agents: int, repeats: int) -> tuple[float, int]:
    """Median seconds per tick of ``agents`` (after one warm-up tick) and how many agents got idle."""
    client.post("/tick", json=tick_body(agents, 0)).raise_for_status()
    times, idle = [], 0
    for number in range(1, repeats + 1):
        started = time.perf_counter()
        response = client.post("/tick", json=tick_body(agents, number))
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        idle_now = sum(
            action["action"]["tool"] == "idle" and "tool call" not in action["action"]["reasoning"]
            for action in response.json()["actions"]
        )
        idle += idle_now
        print(f"  tick {number}/{repeats}: {times[-1]:.2f} s, {idle_now} idle", file=sys.stderr, flush=True)
    return statistics.median(times), idle


def replicas_up(client: httpx.Client) -> list[bool]:
    return [row["up"] for row in client.get("/ready").json().get("replicas", [])]


def run(stack: Stack, agents: int, repeats: int) -> None:
    with httpx.Client(base_url=stack.agent_url, headers=stack.auth_headers, timeout=TIMEOUT_S) as client:
        assert replicas_up(client) == [True, True], client.get("/ready").text
        two, idle_two = timed_ticks(client, agents, repeats)
        stack.container("vllm-1").stop(timeout=10)
        deadline = time.monotonic() + 60
        while replicas_up(client) != [True, False]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent still lists vllm-1 up: {client.get('/ready').text}")
            time.sleep(1)
        one, idle_one = timed_ticks(client, agents, repeats)
    print(f"\nticks of {agents} agents, median of {repeats} (shared machine: compare the ratio, not the times)")
    print(f"  2 replicas: {two:7.2f} s/tick  {agents / two:7.2f} decisions/s  (idle after failure: {idle_two})")
    print(f"  1 replica : {one:7.2f} s/tick  {agents / one:7.2f} decisions/s  (idle after failure: {idle_one})")
    print(f"  2 vs 1    : {one / two:5.2f}x decisions/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=16, help="agents per /tick")
    parser.add_argument("--repeats", type=int, default=5, help="timed ticks per phase (median kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-bench-replicas-") as tmp:
        workdir = Path(tmp)
        override = write_override("cpu", count=2, output=workdir / "docker-compose.replicas.yml")
        assert override is not None
        try:
            with start_stack(workdir, "cpu", [str(override)]) as stack:
                run(stack, args.agents, args.repeats)
        except StackBuildError as exc:
            sys.exit(f"bench_replicas: {exc.one_line}")


if __name__ == "__main__":
    main()
