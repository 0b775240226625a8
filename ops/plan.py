"""``arena-vllm plan``: how a profile's model splits a card's memory, before anything is started or downloaded.

The numbers come from the engine package (ops/engine), the same planner and fit the entrypoint
runs before it execs vLLM, so what this prints is what the entrypoint decides on that card. The
model's config.json comes from a folder, the HF cache, the copies shipped in configs/models/, or
the hub (config.json alone; never with ``--offline`` or ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import argparse
import os

from arena_vllm.config import ProfileSettings, read_secret_file
from ops.engine.fit import MemoryDecision, choose_profile, fit_memory, plan_profile, requested_profile
from ops.engine.gpus import GpuMemory, gpu_memory
from ops.engine.model_config import FoundConfig, find_model_config
from ops.engine.planner import GIB, Card, MemoryPlan
from ops.engine.server import HF_TOKEN_FILE
from ops.errors import OpsError


def plan_for(
    profile_name: str,
    model: str | None,
    vram_gib: float | None,
    free_gib: float | None,
    online: bool,
    overrides: list[str],
) -> tuple[ProfileSettings, str, FoundConfig, MemoryPlan, Card, MemoryDecision | None]:
    """Resolve profile, model and card (``vram_gib`` or the detected GPU) and plan; with the free memory
    known, plan what the entrypoint would start (its fitted gpu_memory_utilization)."""
    if vram_gib is not None and vram_gib <= 0 or free_gib is not None and free_gib < 0:
        raise OpsError("--vram must be more than 0 GiB and --free at least 0; e.g. --vram 8 --free 6.5")
    detected = gpu_memory() if vram_gib is None else []
    total_gib = vram_gib if vram_gib is not None else (detected[0].total_mib / 1024 if detected else None)
    if free_gib is None and vram_gib is None and detected:
        free_gib = detected[0].free_mib / 1024
    if total_gib is not None and free_gib is not None and free_gib > total_gib:
        raise OpsError(f"--free {free_gib:g} is more than the card's {total_gib:g} GiB; pass --free <= --vram")
    token_file = os.environ.get(HF_TOKEN_FILE[0])
    token = read_secret_file(token_file, HF_TOKEN_FILE[0], optional=True)  # else huggingface_hub's own lookup
    configs: dict[str, FoundConfig] = {}

    def config_of(profile: ProfileSettings) -> FoundConfig:
        source = model or profile.model
        if source not in configs:
            configs[source] = find_model_config(source, os.environ.get("HF_HUB_CACHE"), token, online)
        return configs[source]

    gpus = [GpuMemory(total_gib * 1024, (free_gib if free_gib is not None else total_gib) * 1024)] if total_gib else []

    def decide(profile: ProfileSettings) -> MemoryDecision:
        found = config_of(profile) if profile.device == "gpu" else None
        return fit_memory(profile, gpus, found.config if found else None, lambda: [], found.source if found else "")

    profile, _ = choose_profile(profile_name, overrides, gpus, decide, lambda: [])
    found = config_of(profile)
    card = Card(
        total_bytes=int((total_gib or 0) * GIB),
        free_bytes=None if free_gib is None else int(free_gib * GIB),
        device=profile.device,
    )
    if profile.device == "gpu" and not card.total_bytes:
        raise OpsError(f"profile {profile.name} is a GPU profile and no GPU was found; pass --vram GIB [--free GIB]")
    decision = None
    util = profile.gpu_memory_utilization
    if profile.device == "gpu" and card.free_bytes is not None:
        decision = decide(profile)
        util = decision.utilization
    return profile, model or profile.model, found, plan_profile(profile, found.config, card, util), card, decision


def run_plan(args: argparse.Namespace) -> int:
    profile, source, found, plan, card, decision = plan_for(
        args.profile, args.model, args.vram, args.free, not args.offline, args.overrides
    )
    where = f"{card.total_bytes / GIB:.2f} GiB card" if plan.device == "gpu" else "CPU (host RAM)"
    if card.free_bytes is not None:
        where += f", {card.free_bytes / GIB:.2f} GiB free"
    print(f"profile {profile.name}, model {source} (config.json from {found.source}), {where}")
    width = max(len(label) for label, _ in plan.rows())
    for label, value in plan.rows():
        print(f"  {label:<{width}}  {value}")
    if decision is not None:
        print(f"  entrypoint: {decision.notes[0]}")
        if decision.refusal:
            print(f"  entrypoint refuses: {decision.refusal}")
    return 0 if plan.fits else 1


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``plan`` to the ops CLI."""
    parser = commands.add_parser("plan", help="predict weights, activation, KV cache and seats for a profile on a card")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile.max_model_len=4096")
    parser.add_argument(
        "--profile",
        default=requested_profile(),
        help="profile name or auto (default: $VLLM_PROFILE or auto)",
    )
    parser.add_argument("--model", help="model folder or HF id (default: the profile's model)")
    parser.add_argument("--vram", type=float, help="card size in GiB (default: the detected GPU)")
    parser.add_argument("--free", type=float, help="free VRAM in GiB (default: the detected GPU's)")
    parser.add_argument(
        "--offline", action="store_true", help="never fetch config.json from the HF hub (as HF_HUB_OFFLINE=1)"
    )
    parser.set_defaults(func=run_plan)
