"""Throughput on a GPU profile, in one command: vLLM and the agent started here, /tick at N agents (issue 22).

Starts vLLM through the entrypoint (``ops/run_vllm_server.py``: the profile, its planner, thread
settings and warm-up, which this waits for) and the agent service beside it on loopback, then
for each N runs bench_tick's tick and direct steps (``--repeats`` times, every repeat printed)
while sampling: GPU busy (nvidia-smi, 0.5 s), CPU of the EngineCore, the API server and the agent
(cores while the step ran), vLLM's running / waiting / KV-cache peaks (``/metrics``, 0.5 s),
generated tokens per decision, calls cut at ``max_tokens`` (vLLM's finish reasons) and the
decisions' sources (the agent's ``/metrics``), and what limited the step: the card (GPU >= 80%
busy), one of the Python processes at about one core, or none. ``--without-grammar`` also sends
each N's requests with no grammar and the same tokens (the engine's own ceiling there). One table at
the end; ``--out`` keeps the logs and a JSON of every number.

    python -m benchmarks.bench_gpu --profile gpu-8gb                 # the card as it is
    python -m benchmarks.bench_gpu --profile gpu-8gb --card-mib 8188 # an 8 GB card on a larger one
    python -m benchmarks.bench_gpu --profile gpu-8gb --model-dir /models/qwen --agents 32,256

``--card-mib`` scales the profile's ``gpu_memory_utilization`` to that card (util x card / GPU),
as ``ops plan`` would size it there. Needs the project's client and vLLM importable (the GPU
image, or a host with both) and a free port 8000 and 5000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from openai import AsyncOpenAI, DefaultAioHttpClient

from arena_vllm.backends.vllm import CONNECTION_LIMITS
from arena_vllm.config import Settings, load_settings
from benchmarks.bench_tick import TIMEOUT_S, Target, direct_request, observations
from benchmarks.bench_tick import run as run_tick

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
VLLM_URL, AGENT_URL = "http://127.0.0.1:8000", "http://127.0.0.1:5000"
#: The agent's deadline and tick size for the bench: a slow tick must be measured, not cut.
AGENT_BENCH_OVERRIDES = ["agent.tick_deadline_s=300"]


def gpu_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0])


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(check: Any, what: str, timeout_s: float, proc: subprocess.Popen) -> float:
    """Seconds until ``check()`` is true; exits naming ``what`` if the process dies or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            sys.exit(f"bench_gpu: {what} exited with {proc.returncode} before it was ready (see its log)")
        try:
            if check():
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"bench_gpu: {what} not ready within {timeout_s:.0f} s")


def metric_sums(text: str, names: dict[str, str], label: str | None = None) -> dict[str, float]:
    """Prometheus samples summed by wanted name (``label`` adds the label's value to the key)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in names:
            continue
        key = names[name]
        if label and (match := re.search(rf'{label}="([^"]*)"', line)):
            key = f"{key}:{match.group(1)}"
        values[key] = values.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


class Sampler:
    """GPU busy and vLLM's running/waiting/KV every 0.5 s, in background threads, while a step runs."""

    def __init__(self) -> None:
        self.gpu: list[float] = []
        self.peaks = {"running": 0.0, "waiting": 0.0, "kv": 0.0}
        self._stop = threading.Event()
        self._smi = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "500"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._threads = [
            threading.Thread(target=self._read_gpu, daemon=True),
            threading.Thread(target=self._poll_vllm, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_gpu(self) -> None:
        assert self._smi.stdout is not None
        for line in self._smi.stdout:
            if line.strip().isdigit():
                self.gpu.append(float(line.strip().split()[0]))

    def _poll_vllm(self) -> None:
        names = {
            "vllm:num_requests_running": "running",
            "vllm:num_requests_waiting": "waiting",
            "vllm:kv_cache_usage_perc": "kv",
            "vllm:gpu_cache_usage_perc": "kv",
        }
        while not self._stop.wait(0.5):
            try:
                values = metric_sums(get(f"{VLLM_URL}/metrics"), names)
            except OSError:
                continue
            for key, value in values.items():
                self.peaks[key] = max(self.peaks[key], value)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._smi.terminate()
        self._smi.wait()
        busy = [u for u in self.gpu if u > 0]
        return {
            "gpu_busy_mean_pct": statistics.mean(busy) if busy else 0.0,
            "gpu_busy_peak_pct": max(self.gpu or [0]),
            "running_peak": self.peaks["running"],
            "waiting_peak": self.peaks["waiting"],
            "kv_peak_pct": 100 * self.peaks["kv"],
        }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_core_pid(api_pid: int) -> int | None:
    """vLLM's EngineCore: the child of the API server whose name says so (V1 runs the engine in its own process)."""
    for child in Path(f"/proc/{api_pid}/task/{api_pid}/children").read_text().split():
        if (
            "Engine" in Path(f"/proc/{child}/comm").read_text()
            or "Engine" in Path(f"/proc/{child}/cmdline").read_text()
        ):
            return int(child)
    return None


def vllm_counters() -> dict[str, float]:
    names = {
        "vllm:generation_tokens_total": "generated",
        "vllm:prompt_tokens_total": "prompt",
        "vllm:request_success_total": "finished",
    }
    return metric_sums(get(f"{VLLM_URL}/metrics"), names, label="finished_reason")


def agent_sources() -> dict[str, float]:
    return metric_sums(get(f"{AGENT_URL}/metrics"), {"arena_agent_decisions_total": "decisions"}, label="source")


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] - before.get(key, 0.0)}


def py_spy_top(py_spy: str, pid: int, seconds: int, out: Path) -> list[str]:
    """py-spy's raw samples of the EngineCore over ``seconds``, as the 12 most frequent leaf frames."""
    raw = out / f"py-spy-{pid}.txt"
    subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--nonblocking",
            "-r",
            "50",
            "-d",
            str(seconds),
            "-f",
            "raw",
            "-o",
            str(raw),
        ],
        capture_output=True,
        timeout=seconds + 30,
    )
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines() if raw.exists() else []:
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")[1:]
        leaf = " <- ".join(f.split(" (")[0] for f in reversed(frames[-3:]))
        counts[leaf] = counts.get(leaf, 0) + int(n)
        total += int(n)
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
    return [f"{100 * n / total:5.1f}% {leaf[:160]}" for leaf, n in top] if total else ["(no samples)"]


class Services:
    """vLLM through the entrypoint and the agent, each in its own process group, logs under ``out``."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.out = out
        engine_overrides = args.engine_overrides  # shell-quoted, as $VLLM_OVERRIDES is read
        if args.card_mib:
            profile = load_settings([f"profile={args.profile}"]).profile
            util = profile.gpu_memory_utilization * args.card_mib / gpu_mib()
            engine_overrides = f"profile.gpu_memory_utilization={util:.6f} {engine_overrides}"
        env = {
            **os.environ,
            "VLLM_PROFILE": args.profile,
            "VLLM_OVERRIDES": engine_overrides.strip(),
            "ARENA_WARM_FILE": str(out / "warm.txt"),
            "PYTHONUNBUFFERED": "1",
        }
        if args.engine_pythonpath:
            env["PYTHONPATH"] = args.engine_pythonpath
        if args.model_dir:
            env["VLLM_LOCAL_MODEL_DIR"] = args.model_dir
        print(f"starting vLLM: VLLM_PROFILE={args.profile} VLLM_OVERRIDES={env['VLLM_OVERRIDES']!r}", flush=True)
        started = time.monotonic()
        self.vllm = subprocess.Popen(
            [sys.executable, str(REPO / "ops" / "run_vllm_server.py"), "--bind", "127.0.0.1", "--port", "8000"],
            env=env,
            cwd=REPO,
            start_new_session=True,
            stdout=open(out / "vllm.log", "w"),
            stderr=subprocess.STDOUT,
        )
        self.healthy_s = wait_for(lambda: get(f"{VLLM_URL}/health") is not None, "vLLM", 900, self.vllm)
        wait_for(lambda: (out / "warm.txt").exists(), "vLLM's warm-up", 900, self.vllm)
        self.warm_s = time.monotonic() - started - self.healthy_s
        self.warmup = (out / "warm.txt").read_text().strip()
        self.engine_pid = engine_core_pid(self.vllm.pid) or self.vllm.pid
        self.agent_overrides = [*AGENT_BENCH_OVERRIDES, *shlex.split(args.agent_overrides)]
        agent_env = {
            **os.environ,
            "AGENT_OVERRIDES": " ".join([*AGENT_BENCH_OVERRIDES, args.agent_overrides]).strip(),
            "AGENT_PORT": "5000",
            "VLLM_API_BASE": f"{VLLM_URL}/v1",
            "PYTHONUNBUFFERED": "1",
        }
        if args.agent_pythonpath:  # the agent's own dependencies where the engine's pin older ones (a bare host)
            agent_env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [args.agent_pythonpath, os.environ.get("PYTHONPATH")])
            )
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "arena_vllm.agent", "agent.host=127.0.0.1"],
            env=agent_env,
            cwd=REPO,
            start_new_session=True,
            stdout=open(out / "agent.log", "w"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: get(f"{AGENT_URL}/health") is not None, "the agent", 120, self.agent)
        self.model = json.loads(get(f"{VLLM_URL}/v1/models"))["data"][0]["id"]
        print(
            f"vLLM healthy in {self.healthy_s:.0f} s, then {self.warmup} (waited {self.warm_s:.0f} s); "
            f"EngineCore pid {self.engine_pid}; agent overrides {self.agent_overrides}",
            flush=True,
        )

    def pids(self) -> dict[str, int]:
        """The processes whose CPU a step reports (keys of PROCESS_NAMES)."""
        return {"engine": self.engine_pid, "api": self.vllm.pid, "agent": self.agent.pid, "bench": os.getpid()}

    def stop(self) -> None:
        for proc in (self.agent, self.vllm):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def sampled(services: Services, work: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """``work()``'s result, and what the Sampler and each process's CPU (cores) saw while it ran."""
    pids = services.pids()
    cpu, sampler, started = {name: cpu_seconds(pid) for name, pid in pids.items()}, Sampler(), time.monotonic()
    result = work()
    wall = time.monotonic() - started
    row = sampler.stop()
    row.update({f"{name}_cores": (cpu_seconds(pid) - cpu[name]) / wall for name, pid in pids.items()})
    return result, row


def measure(
    services: Services, agents: int, repeats: int, py_spy: str | None, also_without_grammar: bool = False
) -> dict[str, Any]:
    settings = load_settings(services.agent_overrides)
    target = Target(AGENT_URL, f"{VLLM_URL}/v1", services.model, os.environ.get("VLLM_API_KEY", "EMPTY"))
    counters, sources = vllm_counters(), agent_sources()
    spy: list[str] = []
    spy_thread = None
    if py_spy and agents == max(ARGS_AGENTS):

        def record() -> None:
            time.sleep(8)
            spy.extend(py_spy_top(py_spy, services.engine_pid, 5, services.out))

        spy_thread = threading.Thread(target=record, daemon=True)
        spy_thread.start()
    result, row = sampled(services, lambda: asyncio.run(run_tick(target, settings, agents, repeats, sequential=False)))
    if spy_thread:
        spy_thread.join(60)
    made = delta(vllm_counters(), counters)
    decided = delta(agent_sources(), sources)
    finished = {key.split(":", 1)[1]: value for key, value in made.items() if key.startswith("finished:")}
    requests = sum(finished.values()) or 1
    decisions = sum(decided.values()) or 1
    tick, direct = result["median"]["tick"], result["median"]["direct"]
    row.update(
        {
            "agents": agents,
            "tick_s": tick,
            "direct_s": direct,
            "decisions_per_s": agents / tick,
            "tick_over_direct": tick / direct,
            "tick_over_direct_each": [t / d for t, d in zip(result["times"]["tick"], result["times"]["direct"])],
            "tokens_per_decision": result["tokens"]["tick"] / agents,
            "prompt_tokens_per_request": made.get("prompt", 0.0) / requests,
            "cut_at_max_tokens_pct": 100 * finished.get("length", 0.0) / requests,
            "sources": {key.split(":", 1)[1]: int(v) for key, v in decided.items()},
            "decisions_counted": int(decisions),
            "prefix_cache_hit_rate": result["hit_rate"]["tick"],
            "py_spy_engine": spy,
        }
    )
    row["limit"] = what_limits(row)
    if also_without_grammar:
        tokens = max(1, round(row["tokens_per_decision"]))
        row["without_grammar"] = without_grammar(services, target, settings, agents, tokens, repeats)
    return row


#: A resource this busy over a step is what limits it: the GPU, or one Python process at about one core.
GPU_BOUND_PCT, PROCESS_BOUND_CORES = 80.0, 0.85
PROCESS_NAMES = {
    "engine": "vLLM's EngineCore",
    "api": "vLLM's API server",
    "agent": "the agent",
    "bench": "this bench's client",
}


def what_limits(row: dict[str, Any]) -> str:
    """The resource that was saturated while the step ran, or that none was (then it waited on something)."""
    if row["gpu_busy_mean_pct"] >= GPU_BOUND_PCT:
        return f"the card ({row['gpu_busy_mean_pct']:.0f}% busy)"
    cores, label = max((row[f"{name}_cores"], label) for name, label in PROCESS_NAMES.items())
    if cores >= PROCESS_BOUND_CORES:
        return f"{label} ({cores:.2f} cores)"
    return f"none saturated (busiest: {label}, {cores:.2f} cores)"


async def timed_requests(target: Target, requests: list[dict[str, Any]]) -> float:
    """Seconds for ``requests`` at once, over the agent's own transport (aiohttp): the bench's httpx client feeds
    vLLM more slowly than the agent does, and would be the limit of a no-grammar step."""
    http = DefaultAioHttpClient(timeout=TIMEOUT_S, limits=CONNECTION_LIMITS)
    async with AsyncOpenAI(
        base_url=target.vllm_api_base, api_key=target.api_key, max_retries=0, http_client=http
    ) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.chat.completions.create(**request) for request in requests))
        return time.monotonic() - started


#: What makes vLLM constrain a request (the schema format's response_format, the openai format's tools), and
#: the field that goes only with tools.
GRAMMAR_KEYS = ("response_format", "tools", "tool_choice", "parallel_tool_calls")


def without_grammar(
    services: Services, target: Target, settings: Settings, agents: int, tokens: int, repeats: int
) -> dict[str, Any]:
    """The same N requests straight to vLLM with no grammar and exactly ``tokens`` generated each: the engine's
    and API server's own ceiling at this N, so the grammar's share of the tick shows."""
    requests = []
    for observation in observations(agents):
        request = {
            k: v for k, v in direct_request(target.model, observation, settings).items() if k not in GRAMMAR_KEYS
        }
        requests.append({**request, "max_tokens": tokens, "extra_body": {"ignore_eos": True}})
    times, row = sampled(services, lambda: [asyncio.run(timed_requests(target, requests)) for _ in range(repeats)])
    row.update(
        {"decisions_per_s_each": [agents / t for t in times], "decisions_per_s": agents / statistics.median(times)}
    )
    row["limit"] = what_limits(row)
    return row


ARGS_AGENTS: list[int] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="gpu-8gb")
    parser.add_argument("--card-mib", type=int, default=0, help="emulate a card of this many MiB (0: the GPU as it is)")
    parser.add_argument(
        "--model-dir", default="", help="a local model folder (VLLM_LOCAL_MODEL_DIR); default: the profile's"
    )
    parser.add_argument("--agents", default="32,128,256,512", help="comma-separated N")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engine-overrides", default="", help="Hydra overrides for vLLM's entrypoint, one string")
    parser.add_argument("--agent-overrides", default="", help="Hydra overrides for the agent (and the direct requests)")
    parser.add_argument("--agent-pythonpath", default="", help="prepended to PYTHONPATH for the agent only")
    parser.add_argument("--engine-pythonpath", default="", help="PYTHONPATH for vLLM only (default: this process's)")
    parser.add_argument("--py-spy", default="", help="py-spy binary: profile the EngineCore 5 s during the largest N")
    parser.add_argument(
        "--without-grammar",
        action="store_true",
        help="also send each N's requests with no grammar (same tokens, ignore_eos): the engine's own ceiling",
    )
    parser.add_argument("--out", default="bench-gpu-out", help="folder for the logs and results.json")
    args = parser.parse_args()
    ARGS_AGENTS.extend(int(n) for n in args.agents.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for url in (VLLM_URL, AGENT_URL):  # a server left running there would be measured instead of ours
        try:
            get(f"{url}/health", timeout=2)
        except OSError:
            continue
        sys.exit(f"bench_gpu: something already answers at {url}; stop it first")
    # timeout(1) and Ctrl-C end the run through the finally below, which stops both services
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench_gpu: terminated"))
    services = Services(args, out)
    rows = []
    try:
        for agents in ARGS_AGENTS:
            rows.append(measure(services, agents, args.repeats, args.py_spy or None, args.without_grammar))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        services.stop()
    (out / "results.json").write_text(
        json.dumps(
            {
                "profile": args.profile,
                "card_mib": args.card_mib,
                "healthy_s": services.healthy_s,
                "warmup": services.warmup,
                "engine_overrides": args.engine_overrides,
                "agent_overrides": services.agent_overrides,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(
        f"\n{args.profile}{f' on a {args.card_mib} MiB card (emulated)' if args.card_mib else ''}: "
        f"median of {args.repeats} repeats"
    )
    print(
        "| N | tick s | decisions/s | tick/direct (each repeat) | GPU busy | engine / API / agent cores "
        "| running / waiting peak | KV peak | tokens per decision | cut at max_tokens | sources | limit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        each = ", ".join(f"{x:.2f}" for x in r["tick_over_direct_each"])
        print(
            f"| {r['agents']} | {r['tick_s']:.2f} | {r['decisions_per_s']:.0f} | {r['tick_over_direct']:.2f} ({each}) "
            f"| {r['gpu_busy_mean_pct']:.0f}% | {r['engine_cores']:.1f} / {r['api_cores']:.1f} / {r['agent_cores']:.1f} "
            f"| {r['running_peak']:.0f} / {r['waiting_peak']:.0f} | {r['kv_peak_pct']:.1f}% "
            f"| {r['tokens_per_decision']:.0f} | {r['cut_at_max_tokens_pct']:.0f}% | {r['sources']} | {r['limit']} |"
        )
    if any("without_grammar" in r for r in rows):
        print("\nThe same requests with no grammar (same tokens per decision, straight to vLLM):")
        print("| N | decisions/s (each repeat) | with grammar / without | GPU busy | engine / API cores | limit |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            w = r["without_grammar"]
            each = ", ".join(f"{x:.0f}" for x in w["decisions_per_s_each"])
            print(
                f"| {r['agents']} | {w['decisions_per_s']:.0f} ({each}) | {r['decisions_per_s'] / w['decisions_per_s']:.2f} "
                f"| {w['gpu_busy_mean_pct']:.0f}% | {w['engine_cores']:.1f} / {w['api_cores']:.1f} | {w['limit']} |"
            )
    for r in rows:
        if r["py_spy_engine"]:
            print(f"\nEngineCore py-spy at N={r['agents']} (leaf frames, share of samples):")
            print("\n".join(r["py_spy_engine"]))


if __name__ == "__main__":
    main()
