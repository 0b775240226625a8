#!/usr/bin/env python3
"""Soak the agent service from the command line; the soak itself is ``tests/support/soak.py``.

Start the stack first (``arena-vllm up`` or ``--start-stack``, which builds and starts the
test stack with a tiny model and takes it down at the end). Only one stack at a time here;
run from the repository root::

    flock /tmp/arena-docker.lock python -m benchmarks.soak --start-stack            # 64 x 150
    python -m benchmarks.soak --agent-url http://127.0.0.1:5000 --agents 8 --ticks 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from docker.models.containers import Container

from tests.support.soak import SoakOptions, find_agent_container, report, run_soak
from tests.support.stack import StackBuildError, start_stack


@contextmanager
def target(args: argparse.Namespace) -> Iterator[tuple[str, Container | None]]:
    """The agent URL and container: the test stack started here, or the one given."""
    if not args.start_stack:
        yield args.agent_url, find_agent_container(args.agent_url, args.agent_container)
        return
    with tempfile.TemporaryDirectory(prefix="arena-soak-") as workdir, ExitStack() as exits:
        try:
            stack = exits.enter_context(start_stack(Path(workdir), "cpu"))
        except StackBuildError as exc:
            sys.exit(f"soak: {exc.one_line}")
        yield stack.agent_url, stack.container("agent")


def main(argv: list[str] | None = None) -> int:
    defaults = SoakOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent-url", default=defaults.agent_url, help="the agent service (loopback only)")
    parser.add_argument("--agents", type=int, default=defaults.agents, help="agents per tick")
    parser.add_argument("--ticks", type=int, default=defaults.ticks, help="ticks to send, one after another")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.max_seconds,
        help="stop sending ticks after this long (the report says so)",
    )
    parser.add_argument(
        "--warmup-ticks", type=int, default=defaults.warmup_ticks, help="uncounted ticks before the start figures"
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=defaults.request_timeout_s,
        help="seconds one /tick may take before it counts as an error",
    )
    parser.add_argument(
        "--agent-container",
        default=None,
        help="the agent's container name (default: the one publishing the URL's port)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the generated observations")
    parser.add_argument(
        "--start-stack",
        action="store_true",
        help="build and start the test CPU stack (tiny model) for the run, then take it down",
    )
    args = parser.parse_args(argv)
    if args.agents < 1 or args.ticks < 1 or args.max_seconds <= 0:
        parser.error("--agents, --ticks and --max-seconds must be positive")
    with target(args) as (agent_url, container):
        options = SoakOptions(
            agent_url=agent_url,
            agents=args.agents,
            ticks=args.ticks,
            max_seconds=args.max_seconds,
            warmup_ticks=args.warmup_ticks,
            request_timeout_s=args.request_timeout,
            agent_container=args.agent_container,
            seed=args.seed,
        )
        result = run_soak(options, container, progress_every=10)
    print(report(options, result), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
