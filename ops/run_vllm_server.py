#!/usr/bin/env python3
"""Start vLLM's OpenAI server from the composed config: the container entrypoint, also usable on a host.

A thin main over the engine package (ops/engine): pick and fit the profile before anything is
downloaded, print the resolved settings (secrets masked), write the API key's config file and
exec the server. Every failure a user can fix ends in one line naming the fix (an
:class:`~ops.errors.OpsError` or a config error), never a traceback.

Usage::

    python -m ops.run_vllm_server                       # inside the container (the image's ENTRYPOINT)
    python -m ops.run_vllm_server --bind 127.0.0.1 profile=cpu profile.max_model_len=2048
    python -m ops.run_vllm_server --dry-run profile=gpu-8gb   # print the command only
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from arena_vllm.config import VLLM_OVERRIDES_ENV, ConfigError, env_overrides, load_settings
from ops.engine import warmup
from ops.engine.fit import requested_profile
from ops.engine.server import VLLM_PORT, ServerPlan, build_plan, describe, write_secret_config
from ops.errors import OpsError

PREFIX = "run_vllm_server"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PREFIX, description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=gpu-8gb profile.max_model_len=4096")
    parser.add_argument(
        "--bind",
        default=os.environ.get("VLLM_BIND", "0.0.0.0"),
        help="address to listen on (0.0.0.0 in a container; 127.0.0.1 on a host)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("VLLM_LISTEN_PORT", VLLM_PORT)))
    parser.add_argument("--dry-run", action="store_true", help="print the resolved command and exit")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> ServerPlan:
    """Everything before the exec: the plan, printed. (A step added before vLLM starts goes here or in main.)"""
    plan = build_plan([*args.overrides, *env_overrides(VLLM_OVERRIDES_ENV)], args.bind, args.port)
    print(describe(plan, requested_profile()), flush=True)
    return plan


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PREFIX}: %(message)s")
    try:
        plan = prepare(args)
        if args.dry_run:
            return
        write_secret_config(plan)
        backend = load_settings([*args.overrides, *env_overrides(VLLM_OVERRIDES_ENV)]).backend
    except (OpsError, ConfigError) as exc:
        sys.exit(f"{PREFIX}: {exc}")
    # Two rounds of requests at the profile's seat count once /health answers, before compose calls it healthy.
    warmup.start(
        f"http://127.0.0.1:{args.port}",
        plan.served_name,
        plan.profile.max_num_seqs,
        plan.api_key,
        {"temperature": backend.temperature, "top_p": backend.top_p},
    )
    os.execvpe(plan.argv[0], plan.argv, plan.env)


if __name__ == "__main__":
    main()
