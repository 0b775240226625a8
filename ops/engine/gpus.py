"""What nvidia-smi says about this machine's GPUs: memory of each card, the processes holding VRAM,
the driver. The only module of the engine package that runs nvidia-smi (tests put a stand-in on PATH).

nvidia-smi is read field by field, because real cards do not answer every field: a virtual GPU
or a consumer card answers ``memory.reserved`` with ``[N/A]``, and older drivers refuse the field
outright ("not a valid field"). A card that answers its total and free memory is a card; an
unknown reserve counts as 0 and says so in :attr:`GpuMemory.note` (the entrypoint logs it).

Example::

    for card in gpu_memory():
        print(f"{card.total_mib:.0f} MiB as CUDA counts it, {card.free_mib:.0f} MiB free", card.note)
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: nvidia-smi answers in well under a second; a hung driver must not hang the start.
SMI_TIMEOUT_S = 20
MEMORY_FIELDS = ("memory.total", "memory.reserved", "memory.free")


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's memory (MiB): total as CUDA counts it (nvidia-smi's total less the driver's reserve), free.

    vLLM's budget is ``util x`` CUDA's total (79.18 GiB on an H100 whose nvidia-smi total is 81559 MiB).
    """

    total_mib: float
    free_mib: float
    note: str = ""  # how the reading was made when a field was missing (the entrypoint logs it)


def run_smi(*args: str) -> tuple[int, str]:
    """nvidia-smi's exit code and output (stdout, else stderr); (127, why) without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return 127, "nvidia-smi is not on PATH"
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
    except (subprocess.SubprocessError, OSError) as exc:
        return 1, str(exc)
    return done.returncode, done.stdout if done.returncode == 0 else (done.stderr or done.stdout)


def nvidia_smi_query(fields: str) -> list[str]:
    """One CSV line per visible GPU for ``--query-gpu=fields``; empty without nvidia-smi, a GPU or the fields."""
    code, out = run_smi(f"--query-gpu={fields}", "--format=csv,noheader,nounits")
    return [line.strip() for line in out.splitlines() if line.strip()] if code == 0 else []


def _number(value: str) -> float | None:
    """A field's value in MiB; None for ``[N/A]``, ``[Not Supported]`` or anything else unreadable."""
    try:
        return float(value.strip())
    except ValueError:
        return None


def parse_memory_line(line: str, fields: tuple[str, ...]) -> GpuMemory | None:
    """One card from one CSV line of ``fields``; None when total or free is unreadable (not a usable card)."""
    values = dict(zip(fields, (_number(part) for part in line.split(","))))
    total, free = values.get("memory.total"), values.get("memory.free")
    if total is None or free is None:
        logger.warning("nvidia-smi line %r has no usable memory.total and memory.free: card skipped", line)
        return None
    if "memory.reserved" not in fields:
        return GpuMemory(total, free, "this driver does not answer memory.reserved: counted as 0")
    reserved = values.get("memory.reserved")
    if reserved is None:
        return GpuMemory(total, free, f"memory.reserved answered {line.split(',')[1].strip()!r}: counted as 0")
    return GpuMemory(total - reserved, free)


def gpu_memory() -> list[GpuMemory]:
    """Total and free VRAM of each visible GPU; empty without nvidia-smi or a GPU.

    Asks for total, reserved and free; a driver that refuses ``memory.reserved`` is asked again
    for total and free alone.
    """
    code, out = run_smi(f"--query-gpu={','.join(MEMORY_FIELDS)}", "--format=csv,noheader,nounits")
    fields = MEMORY_FIELDS
    if code != 0 and code != 127 and "memory.reserved" in out:  # "Field memory.reserved is not a valid field"
        logger.info("nvidia-smi refuses memory.reserved (%s): asking for total and free", out.strip())
        fields = ("memory.total", "memory.free")
        code, out = run_smi(f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits")
    if code != 0:
        return []
    cards = [parse_memory_line(line, fields) for line in out.splitlines() if line.strip()]
    return [card for card in cards if card is not None]  # a card's note is logged with the memory fit


def gpu_vram_gib(cards: list[GpuMemory] | None = None) -> float | None:
    """Smallest VRAM among visible GPUs in GiB (as CUDA counts it), or None without a GPU."""
    cards = gpu_memory() if cards is None else cards
    return min(card.total_mib for card in cards) / 1024 if cards else None


def gpu_processes() -> list[str]:
    """``name (pid N, M MiB)`` for each compute process on the GPUs (what to close to free VRAM)."""
    code, out = run_smi("--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits")
    if code != 0:
        return []
    apps = []
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            apps.append(f"{parts[1]} (pid {parts[0]}, {parts[2]} MiB)")
    return apps


def gpu_driver() -> str | None:
    """Driver version and name of the first GPU, or None without one."""
    lines = nvidia_smi_query("driver_version,name")
    return lines[0] if lines else None
