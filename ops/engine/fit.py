"""Fit a profile to the memory free now, and pick the profile ``auto`` starts: before any download.

:func:`planner_settings` is the one mapping from a profile to the planner's arguments (the
entrypoint, ``arena-vllm plan`` and the tests all go through it). :func:`fit_memory` lowers
``gpu_memory_utilization`` to the free VRAM less the profile's headroom and refuses when the
weights plus one ``max_model_len`` sequence cannot fit (vLLM would fail only after downloading
and loading). :func:`choose_profile` resolves ``auto``: the largest GPU profile made for the card
that fits the free memory; when none does, the refusal names each one's need, the processes
holding VRAM and the fix.

Example::

    decision = fit_memory(profile, gpu_memory(), find_model_config(profile.model, None).config)
    print(decision.utilization, decision.refusal)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arena_vllm.config import ProfileSettings, available_options, load_settings
from ops.engine.gpus import GpuMemory, gpu_processes
from ops.engine.planner import GIB, MIB, Card, MemoryPlan, ModelShape, parse_size, plan_memory
from ops.errors import ProfileRefused

#: The profile name that starts the largest GPU profile fitting the free memory (else cpu).
AUTO = "auto"


def requested_profile(env: Mapping[str, str] = os.environ) -> str:
    """``$VLLM_PROFILE``, or :data:`AUTO` when it is unset or empty: the one home of that default."""
    return env.get("VLLM_PROFILE") or AUTO


def planner_settings(profile: ProfileSettings) -> dict[str, Any]:
    """The planner's keyword arguments for a profile: every key that changes vLLM's memory split."""
    return dict(
        max_model_len=profile.max_model_len,
        max_num_seqs=profile.max_num_seqs,
        quantization=profile.quantization,
        enforce_eager=profile.enforce_eager,
        kv_cache_memory_bytes=parse_size(profile.kv_cache_memory_bytes) if profile.kv_cache_memory_bytes else None,
    )


def plan_profile(profile: ProfileSettings, config: Mapping[str, Any], card: Card, utilization: float) -> MemoryPlan:
    """The planner's split for this profile's model on a card at a given utilization."""
    shape = ModelShape.from_config(config, profile.dtype)
    return plan_memory(shape, card, gpu_memory_utilization=utilization, **planner_settings(profile))


def needed_bytes(profile: ProfileSettings, config: Mapping[str, Any], card: Card) -> int:
    """VRAM vLLM takes for weights, activation, non-torch memory and one max_model_len sequence."""
    probe = plan_profile(profile, config, card, 0.0)
    if probe.device == "gpu" and profile.kv_cache_memory_bytes:
        one_sequence = probe.kv_bytes
    else:
        one_sequence = math.ceil(profile.max_model_len / probe.block_size) * probe.block_size * probe.kv_bytes_per_token
    return probe.weight_bytes + probe.activation_bytes + probe.non_torch_bytes + one_sequence


@dataclass(frozen=True)
class MemoryDecision:
    """What the entrypoint does with a GPU profile on the memory that is free now.

    ``needed``/``free``: bytes, for refusals (``needed`` None when the fit is unchecked).
    """

    utilization: float
    notes: tuple[str, ...]
    refusal: str | None = None
    plan: MemoryPlan | None = None
    needed: int | None = None
    free: int | None = None


def fit_memory(
    profile: ProfileSettings,
    gpus: Sequence[GpuMemory],
    model_config: Mapping[str, Any] | None,
    processes: Callable[[], list[str]] = gpu_processes,
    config_source: str = "",
) -> MemoryDecision:
    """Lower ``gpu_memory_utilization`` to the free VRAM minus the profile's headroom; refuse when the
    weights and one ``max_model_len`` sequence cannot fit.

    vLLM refuses to start when ``util x total`` exceeds the free memory; the headroom covers its own
    CUDA context, the CUDA graphs and the KV blocks it allocates beyond the budget. ``model_config``
    None: no config.json could be found, so only the utilization is fitted (the note says so).
    """
    util = profile.gpu_memory_utilization
    if profile.device != "gpu" or not gpus:
        return MemoryDecision(util, ())
    gpu = min(gpus, key=lambda card: card.free_mib)
    total, free = gpu.total_mib * MIB, gpu.free_mib * MIB
    available = free - profile.vram_headroom_gib * GIB
    wanted = util * total
    notes = [f"nvidia-smi: {gpu.note}"] if gpu.note else []
    if wanted > available:
        util = math.floor(max(available, 0) / total * 10000) / 10000
        notes.append(
            f"gpu_memory_utilization {profile.gpu_memory_utilization:g} x {total / GIB:.2f} GiB = "
            f"{wanted / GIB:.2f} GiB is more than the {free / GIB:.2f} GiB free minus the "
            f"{profile.vram_headroom_gib:g} GiB headroom (profile.vram_headroom_gib): lowered to {util:g}"
        )
    else:
        notes.append(
            f"gpu_memory_utilization {util:g} ({wanted / GIB:.2f} GiB) fits the {free / GIB:.2f} GiB "
            f"free with {profile.vram_headroom_gib:g} GiB headroom"
        )
    if model_config is None:
        notes.append(
            f"FIT UNCHECKED: no config.json for {profile.model} ({config_source or 'not found'}); "
            "vLLM checks the memory only after downloading the weights"
        )
        refusal = None if util > 0 else _refusal(profile, free, total, None, processes)
        return MemoryDecision(util, tuple(notes), refusal, free=int(free))
    card = Card(int(total), int(free))
    plan = plan_profile(profile, model_config, card, util)
    need = needed_bytes(profile, model_config, card) + int(profile.vram_headroom_gib * GIB)
    notes.append(
        f"plan ({config_source or 'config.json'}): weights {plan.weight_bytes / GIB:.2f} GiB, KV cache "
        f"{plan.kv_bytes / GIB:.2f} GiB = {plan.kv_tokens:,} tokens, {plan.seats_at_full_length} of "
        f"{profile.max_num_seqs} seats at {profile.max_model_len:,} tokens"
    )
    if plan.fits and need <= free:
        return MemoryDecision(util, tuple(notes), None, plan, need, int(free))
    return MemoryDecision(
        util, tuple(notes), _refusal(profile, free, total, (plan, need), processes), plan, need, int(free)
    )


def _refusal(
    profile: ProfileSettings,
    free: float,
    total: float,
    short: tuple[MemoryPlan, int] | None,
    processes: Callable[[], list[str]],
) -> str:
    """Why the profile cannot start, and the ways out: smaller profile, shorter context, close processes."""
    fixes = ["a smaller profile (`arena-vllm plan --profile NAME` shows what fits)"]
    if short is None:
        why = (
            f"only {free / GIB:.2f} GiB of {total / GIB:.2f} GiB VRAM is free, less than the "
            f"{profile.vram_headroom_gib:g} GiB headroom"
        )
        missing = profile.vram_headroom_gib * GIB - free
    else:
        plan, need = short
        why = (
            f"{profile.model} needs {need / GIB:.2f} GiB (weights {plan.weight_bytes / GIB:.2f} GiB, one "
            f"{profile.max_model_len:,}-token sequence, activation and {profile.vram_headroom_gib:g} GiB "
            f"headroom); {free / GIB:.2f} GiB of {total / GIB:.2f} GiB VRAM is free"
        )
        missing = need - free
        if plan.kv_tokens >= 256:
            fixes.append(f"a shorter context (profile.max_model_len={plan.kv_tokens // 256 * 256})")
    fixes.append(f"free {max(missing, 0) / GIB:.2f} GiB more VRAM by closing " + held_by(processes()))
    return f"profile {profile.name}: {why}. Fix: " + "; or ".join(fixes)


def held_by(apps: list[str]) -> str:
    """The GPU programs to close, as nvidia-smi lists them (or the usual suspects when it lists none)."""
    return ", ".join(apps) if apps else "other GPU programs (browser, games, other model servers)"


def gpu_candidates(overrides: Sequence[str], vram_gib: float) -> list[ProfileSettings]:
    """GPU profiles made for a card of this size (``min_vram_gib``), largest first."""
    found = []
    for name in available_options("profile"):
        profile = load_settings([f"profile={name}", *overrides]).profile
        if profile.device == "gpu" and profile.min_vram_gib is not None and profile.min_vram_gib <= vram_gib:
            found.append(profile)
    return sorted(found, key=lambda profile: profile.min_vram_gib or 0, reverse=True)


def choose_profile(
    requested: str,
    overrides: Sequence[str],
    gpus: Sequence[GpuMemory],
    decide: Callable[[ProfileSettings], MemoryDecision],
    processes: Callable[[], list[str]] = gpu_processes,
) -> tuple[ProfileSettings, MemoryDecision]:
    """The profile to start and its memory decision; ``auto`` takes the largest GPU profile made for the
    card whose model fits the free memory, ``cpu`` without a GPU. Raises ProfileRefused when it cannot start."""
    if requested != AUTO:
        profile = load_settings([f"profile={requested}", *overrides]).profile
        decision = decide(profile)
        if decision.refusal:
            raise ProfileRefused(decision.refusal)
        return profile, decision
    if not gpus:
        profile = load_settings(["profile=cpu", *overrides]).profile
        return profile, decide(profile)
    vram_gib = min(card.total_mib for card in gpus) / 1024
    candidates = gpu_candidates(overrides, vram_gib)
    if not candidates:
        raise ProfileRefused(
            f"no GPU profile is made for {vram_gib:.1f} GiB of VRAM (min_vram_gib); "
            "set VLLM_PROFILE=cpu, or add a profile in configs/profile/"
        )
    refused = []
    for profile in candidates:
        decision = decide(profile)
        if decision.refusal is None:
            return profile, decision
        refused.append((profile, decision))
    free = min(card.free_mib for card in gpus) * MIB
    needs = ", ".join(
        f"{profile.name} needs {d.needed / GIB:.2f} GiB" if d.needed else f"{profile.name}: {d.refusal}"
        for profile, d in refused
    )
    raise ProfileRefused(
        f"no GPU profile starts in the {free / GIB:.2f} GiB of VRAM free now ({needs}). Fix: free "
        f"VRAM by closing {held_by(processes())}; or VLLM_PROFILE=cpu"
    )
