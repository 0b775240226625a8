"""Thread settings for the vLLM process: no idle spinning on a GPU, every core working on a CPU (issue 22).

On a GPU the engine's work is one Python thread and the card; torch's OpenMP pool only runs
small host-side copies (the grammar bitmask's ``pin_memory`` each step), and with one thread
per core it spun: 10-15 busy cores for nothing, measured with py-spy on an H200 at 32 and 256
seats, 9-15% fewer decisions/s than with ``OMP_NUM_THREADS=1`` (engine 1.0 core).
On a CPU the OpenMP threads are the model's compute: vLLM's CPU backend sizes and pins them
itself (``VLLM_CPU_OMP_THREADS_BIND``), so nothing is set there. A value the user set wins.
"""

from __future__ import annotations

from collections.abc import Mapping

#: For a GPU profile: one OpenMP / MKL thread in the server process.
GPU_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def thread_env(device: str, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the thread defaults for ``device`` ("gpu" or "cpu") added where the user set none."""
    defaults = GPU_THREAD_ENV if device == "gpu" else {}
    return {**defaults, **env}
