"""The agent service alone: decisions per second and agent CPU per decision against an instant stand-in.

What it measures (issue 14): the agent process pinned to one core (``taskset``), vLLM replaced
by ``tests/support/fault_server.py`` in ``tool_call`` mode (answers at once, with a valid
``move_to``) in its own process on another core, and ``/tick`` bodies of N foraging
observations sent back to back for ``--seconds``. For each N it prints decisions/s and the
agent's CPU milliseconds per decision, taken from the agent process's own CPU time
(user + system, ``psutil``): on a shared machine that is the robust number, decisions/s
depends on what else runs.

The code as it was (``--baseline-ref``, default: main before issue 14) runs in the same run,
from a ``git archive`` of that commit, in a second agent process on the same core; the two
are measured in turn (interleaved per repeat), so ratios are fair. The issue's table is
printed next to them.

Run from the repository root (``tests.support`` is imported as a package, no path edits)::

    python -m benchmarks.bench_agent                          # N = 8 32 64 128, 15 s each, 1 repeat
    python -m benchmarks.bench_agent --agents 64 --seconds 5 --repeats 3 --baseline-ref none

Targets: agent CPU <= 1.5 ms per decision at N=64, and N=128 within 20% of N=8 per decision.
Every action must be the model's (its ``source``, or ``native tool call`` in the baseline): an ``idle`` would be a cheaper decision.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from benchmarks.bench_tick import by_model, observations

REPO = Path(__file__).resolve().parents[1]
#: main before issue 14's changes: the code the issue's table was measured on.
BASELINE_REF = "7c9f824"
#: The issue's measurement of that code (N: decisions/s, agent CPU ms per decision).
ISSUE_TABLE = {8: (122, 3.31), 32: (212, 3.62), 64: (156, 5.93), 128: (159, 6.03)}
CPU_TARGET_MS = 1.5
FLATNESS_TARGET = 1.2
#: A valid ``move_to`` for the foraging tools (the first tool, which tool_choice=required lets the stand-in pick).
STAND_IN_CALL = {"target_position": [3.0, 0.0, 4.0]}
#: The baseline's decisions say it in ``reasoning``; since issue 8 a ``source`` field does.
MODEL_MADE_REASONING = "native tool call"
#: Installed for the current code; the baseline ran without them (uvicorn picks them when importable).
UNAVAILABLE_TO_BASELINE = ("uvloop", "httptools")


@dataclass
class Agent:
    """One agent service process (the current code or the baseline's), pinned to ``core``."""

    label: str
    url: str
    process: subprocess.Popen
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # N -> [(decisions/s, cpu ms)]

    @property
    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.stand_in:
        return _serve_stand_in()
    cores = sorted(os.sched_getaffinity(0))
    agent_core, other_core = cores[0], cores[-1]
    with contextlib.ExitStack() as stack:
        api_base = stack.enter_context(_stand_in(other_core))
        os.sched_setaffinity(0, {other_core})  # the load generator shares the stand-in's core, not the agent's
        agents: list[Agent] = []
        if args.baseline_ref != "none":
            checkout = stack.enter_context(
                _archive(args.baseline_ref, [m for m in args.baseline_without.split(",") if m])
            )
            agents.append(stack.enter_context(_agent("baseline", checkout, api_base, agent_core, args.overrides)))
        agents.append(stack.enter_context(_agent("current", REPO, api_base, agent_core, args.overrides)))
        print(
            f"agent on core {agent_core}; stand-in and load generator on core {other_core} "
            f"({len(cores)} cores available, shared: other load makes decisions/s vary, CPU ms less)",
            flush=True,
        )
        with httpx.Client(timeout=120.0) as http:
            for count in args.agents:
                agents_body = [{"agent_id": obs["agent_id"], "observations": obs} for obs in observations(count)]
                body = json.dumps({"tick": 1, "agents": agents_body}).encode()
                for _ in range(args.repeats):
                    for agent in agents:
                        _measure(http, agent, body, count, args.warmup, args.seconds)
        _report(agents, args.agents)
    return 0


def _measure(http: httpx.Client, agent: Agent, body: bytes, count: int, warmup: float, seconds: float) -> None:
    """Ticks back to back for ``seconds`` (after ``warmup``); one (decisions/s, CPU ms per decision) sample."""
    headers = {"content-type": "application/json"}

    def tick() -> None:
        response = http.post(f"{agent.url}/tick", content=body, headers=headers)
        response.raise_for_status()
        actions = json.loads(response.content)["actions"]
        bad = [a["action"]["reasoning"] for a in actions if not _model_made(a["action"])]
        if len(actions) != count or bad:
            raise SystemExit(f"{agent.label}: {len(bad)} of {len(actions)} actions were not the model's: {bad[:2]}")

    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        tick()
    cpu_before, started, ticks = agent.cpu_s, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        tick()
        ticks += 1
    elapsed, cpu = time.perf_counter() - started, agent.cpu_s - cpu_before
    decisions = ticks * count
    agent.samples.setdefault(count, []).append((decisions / elapsed, cpu / decisions * 1000))
    print(
        f"  {agent.label:8} N={count:<3} {decisions / elapsed:7.0f} decisions/s  "
        f"{cpu / decisions * 1000:5.2f} ms CPU/decision  ({ticks} ticks in {elapsed:.1f} s)",
        flush=True,
    )


def _model_made(decision: dict) -> bool:
    """Whether the model made this decision, in the current (``source``) or the baseline's (reasoning) terms."""
    if "source" in decision:
        return by_model(decision)
    return decision["reasoning"].startswith(MODEL_MADE_REASONING)


def _report(agents: list[Agent], counts: Sequence[int]) -> None:
    """The table: each agent's medians next to the issue's numbers, and the ratios and targets."""
    by_label = {agent.label: {n: _medians(agent.samples[n]) for n in counts} for agent in agents}
    print(
        "\n| N | issue: decisions/s | issue: CPU ms | "
        + " | ".join(f"{label}: decisions/s | {label}: CPU ms" for label in by_label)
        + " |"
        + (" current/baseline CPU |" if "baseline" in by_label else "")
    )
    print("|---" * (3 + 2 * len(by_label) + ("baseline" in by_label)) + "|")
    for n in counts:
        issue = ISSUE_TABLE.get(n)
        cells = [str(n), f"{issue[0]}" if issue else "-", f"{issue[1]:.2f}" if issue else "-"]
        for medians in by_label.values():
            cells += [f"{medians[n][0]:.0f}", f"{medians[n][1]:.2f}"]
        if "baseline" in by_label:
            cells.append(f"{by_label['current'][n][1] / by_label['baseline'][n][1]:.2f}")
        print("| " + " | ".join(cells) + " |")
    current = by_label["current"]
    if 64 in current:
        ok = "ok" if current[64][1] <= CPU_TARGET_MS else "MISSED"
        print(f"\nN=64: {current[64][1]:.2f} ms CPU per decision (target <= {CPU_TARGET_MS}: {ok})")
    if 8 in current and 128 in current:
        ratio = current[128][1] / current[8][1]
        ok = "ok" if ratio <= FLATNESS_TARGET else "MISSED"
        print(f"N=128 / N=8 CPU per decision: {ratio:.2f} (target <= {FLATNESS_TARGET}: {ok})")


def _medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


@contextlib.contextmanager
def _stand_in(core: int) -> Iterator[str]:
    """The fault server in its own process on ``core``; yields its api_base."""
    command = ["taskset", "-c", str(core), sys.executable, "-m", "benchmarks.bench_agent", "--stand-in"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        api_base = process.stdout.readline().strip()
        if not api_base.startswith("http"):
            raise SystemExit(f"the stand-in did not start (exit {process.poll()})")
        yield api_base
    finally:
        process.stdin.close()  # it serves until its stdin closes
        process.wait(timeout=10)


def _serve_stand_in() -> int:
    """Serve the fault server until stdin closes; prints its api_base first. Drops the bodies it keeps."""
    import threading

    from tests.support.fault_server import FaultServer

    with FaultServer(model="tiny", mode="tool_call", tool_args=STAND_IN_CALL) as server:
        print(server.api_base, flush=True)
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
        while not closed.wait(1.0):
            server.requests.clear()  # kept for tests; here it would only grow
    return 0


@contextlib.contextmanager
def _archive(ref: str, without: Sequence[str]) -> Iterator[Path]:
    """``client/`` and ``configs/`` of ``ref`` in a temporary folder (the repository's files stay as they are),
    with the modules ``without`` names hidden from it."""
    with tempfile.TemporaryDirectory(prefix="bench-agent-baseline-") as folder:
        archive = subprocess.run(
            ["git", "archive", ref, "client", "configs"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        # The baseline's dependencies had no uvloop/httptools; uvicorn would pick them up from this
        # environment, so modules of those names that fail to import stand in front of them.
        for module in without:
            (Path(folder) / "client" / f"{module}.py").write_text(
                f"raise ImportError('{module}: not in the baseline')\n"
            )
        yield Path(folder)


@contextlib.contextmanager
def _agent(label: str, checkout: Path, api_base: str, core: int, overrides: Sequence[str]) -> Iterator[Agent]:
    """``python -m arena_vllm.agent`` from ``checkout`` (its client/ first on the path, its configs/), on ``core``."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout / "client"),
        "ARENA_CONFIG_DIR": str(checkout / "configs"),
        "VLLM_API_BASE": api_base,
        "VLLM_SERVED_MODEL_NAME": "tiny",
        "AGENT_OVERRIDES": "",
        "ARENA_OVERRIDES": "",  # the name a --baseline-ref from before issue 22 reads
    }
    command = [
        "taskset",
        "-c",
        str(core),
        sys.executable,
        "-m",
        "arena_vllm.agent",
        "agent.host=127.0.0.1",
        f"agent.port={port}",
        "agent.tick_deadline_s=60",
        *overrides,
    ]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"{label} agent did not start:\n{log.read().decode()[-3000:]}")
            time.sleep(0.2)
        yield Agent(label, url, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[8, 32, 64, 128], help="N agents per /tick")
    parser.add_argument("--seconds", type=float, default=15.0, help="ticks back to back for this long per sample")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of ticks before each sample")
    parser.add_argument("--repeats", type=int, default=1, help="samples per N and agent (median kept)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref run as the baseline; 'none' to skip")
    parser.add_argument(
        "--baseline-without",
        default=",".join(UNAVAILABLE_TO_BASELINE),
        help="modules hidden from the baseline (comma-separated; '' to hide none)",
    )
    parser.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both agents, e.g. agent.max_concurrency=128")
    return parser


if __name__ == "__main__":
    sys.exit(main())
