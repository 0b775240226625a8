"""The ops CLI as a newcomer meets it: the installed ``arena-vllm`` script, and ``python -m ops`` before installing."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from ops.compose import REPO


def test_the_install_puts_arena_vllm_on_the_path_and_it_runs_from_anywhere(tmp_path: Path) -> None:
    (script,) = entry_points(group="console_scripts", name="arena-vllm")
    assert script.value == "arena_vllm.ops_cli:main"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "arena-vllm"), "profiles"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| `cpu` | no GPU |" in result.stdout


def test_python_m_ops_without_the_package_says_how_to_install_in_one_line() -> None:
    # -S: no site-packages, as in a fresh clone before `pip install`
    result = subprocess.run(
        [sys.executable, "-S", "-m", "ops", "up"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "pip install -e 'client[ops]'" in result.stderr and "Traceback" not in result.stderr
