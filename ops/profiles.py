"""The profiles table (README and ``python -m ops profiles``), generated from configs/profile/.

The README carries this table between markers and a unit test keeps it equal to the
output, so profile values are written once, in configs/.
"""

from __future__ import annotations

from arena_vllm.config import ProfileSettings, available_options, load_settings

HEADER = (
    "| profile | fits | model | dtype / quant | context | GPU mem util | max seqs | tool parser |\n"
    "|---|---|---|---|---|---|---|---|"
)


def load_profiles() -> list[ProfileSettings]:
    """Every profile in configs/profile, validated, smallest card first (CPU last)."""
    profiles = [load_settings([f"profile={name}"]).profile for name in available_options("profile")]
    return sorted(profiles, key=lambda p: (p.device == "cpu", p.min_vram_gib or 0))


def _row(profile: ProfileSettings) -> str:
    fits = f">= {profile.min_vram_gib:g} GiB VRAM" if profile.min_vram_gib else "no GPU"
    quant = f"{profile.dtype} / {profile.quantization}" if profile.quantization else profile.dtype
    util = f"{profile.gpu_memory_utilization:g}" if profile.device == "gpu" else f"KV {profile.kv_cache_memory_bytes}"
    cells = [
        f"`{profile.name}`",
        fits,
        f"`{profile.model}`",
        quant,
        str(profile.max_model_len),
        util,
        str(profile.max_num_seqs),
        profile.tool_call_parser,
    ]
    return "| " + " | ".join(cells) + " |"


def profiles_table() -> str:
    return "\n".join([HEADER, *(_row(profile) for profile in load_profiles())])
