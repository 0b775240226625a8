"""``python -m ops plan``: how a profile's model splits a card's memory, before anything is started.

The numbers come from arena_vllm.memory_plan, the same planner the entrypoint runs before it
execs vLLM, so what this prints is what the entrypoint decides on that card.
"""

from __future__ import annotations

import argparse
import os

from arena_vllm.config import load_settings
from arena_vllm.memory_plan import GIB, Card, MemoryPlan, ModelShape, load_model_config, parse_size, plan_memory
from ops.run_vllm_server import GpuMemory, MemoryDecision, fit_memory, gpu_memory, pick_profile


def plan_for(profile_name: str, model: str | None, vram_gib: float | None, free_gib: float | None,
             online: bool, overrides: list[str]) -> tuple[str, str, MemoryPlan, Card, MemoryDecision | None]:
    """Resolve profile, model and card (``vram_gib`` or the detected GPU) and plan; with the free memory
    known, plan what the entrypoint would start (its fitted gpu_memory_utilization)."""
    detected = gpu_memory()
    total_gib = vram_gib if vram_gib is not None else (detected[0].total_mib / 1024 if detected else None)
    if free_gib is None and vram_gib is None and detected:
        free_gib = detected[0].free_mib / 1024
    name = pick_profile(profile_name, overrides, total_gib)
    profile = load_settings([f"profile={name}", *overrides]).profile
    source = model or profile.model
    config = load_model_config(source, os.environ.get("HF_HUB_CACHE"), online)
    shape = ModelShape.from_config(config, profile.dtype)
    card = Card(total_bytes=int((total_gib or 0) * GIB), free_bytes=None if free_gib is None else int(free_gib * GIB),
                device=profile.device)
    if profile.device == "gpu" and not card.total_bytes:
        raise SystemExit(f"plan: profile {name} is a GPU profile and no GPU was found; pass --vram GIB")
    decision = None
    util = profile.gpu_memory_utilization
    if profile.device == "gpu" and card.free_bytes is not None:
        decision = fit_memory(profile, [GpuMemory(card.total_bytes / 2**20, card.free_bytes / 2**20)], config)
        util = decision.utilization
    plan = plan_memory(shape, card, gpu_memory_utilization=util,
                       max_model_len=profile.max_model_len, max_num_seqs=profile.max_num_seqs,
                       quantization=profile.quantization, enforce_eager=profile.enforce_eager,
                       kv_cache_memory_bytes=parse_size(profile.kv_cache_memory_bytes)
                       if profile.kv_cache_memory_bytes else None)
    return name, source, plan, card, decision


def run_plan(args: argparse.Namespace) -> int:
    name, source, plan, card, decision = plan_for(args.profile, args.model, args.vram, args.free, args.online,
                                                  args.overrides)
    where = f"{card.total_bytes / GIB:.2f} GiB card" if plan.device == "gpu" else "CPU (host RAM)"
    if card.free_bytes is not None:
        where += f", {card.free_bytes / GIB:.2f} GiB free"
    print(f"profile {name}, model {source}, {where}")
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
    parser.add_argument("--profile", default=os.environ.get("VLLM_PROFILE", "auto"),
                        help="profile name or auto (default: $VLLM_PROFILE or auto)")
    parser.add_argument("--model", help="model folder or HF id (default: the profile's model, from the HF cache)")
    parser.add_argument("--vram", type=float, help="card size in GiB (default: the detected GPU)")
    parser.add_argument("--free", type=float, help="free VRAM in GiB (default: the detected GPU's)")
    parser.add_argument("--online", action="store_true", help="fetch config.json from the HF hub if not cached")
    parser.set_defaults(func=run_plan)
