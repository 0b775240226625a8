"""Soak the agent service: many agents, many ticks, one after another as the game sends them.

Prints errors (any non-200 or malformed response; goal 0), decisions per second, p50/p95
tick latency, how many decisions the model made (by the decision's ``source``, or the agent's
/metrics where decisions carry none; the rest: idle or heuristic after a failed or late call,
with the reasons), and the agent container's memory at start and end with the growth (goal
under 10%). Bounded in ticks and seconds, loopback only. The verdict (``SoakResult.ok``; the
command line exits 1 without it) is FAILED on any error or any decision the model did not
make: no fault is injected, so each is a failure.

The soak itself, shared by ``tests/stack/test_soak.py`` (short) and the ``benchmarks/soak.py``
command line (long)::

    options = SoakOptions(agent_url="http://127.0.0.1:5000", agents=8, ticks=10)
    print(report(options, run_soak(options, find_agent_container(options.agent_url, None))))

"Start" memory is read after ``--warmup-ticks`` (default 1): the first decisions set up
the HTTP client and import lazily, which is a one-off, not growth.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import docker
import httpx
from docker.models.containers import Container
from prometheus_client.parser import text_string_to_metric_families

from arena_vllm.config import load_settings

#: Every tool a decision may name: the configured tool set plus the fallback.
KNOWN_TOOLS = frozenset(tool.name for tool in load_settings().tools.tools) | {"idle"}
#: A decision's ``source`` (the structured field) when the model made it: its native tool call,
#: or its call written as text. Anything else (the policy's heuristic, idle after a failure)
#: is not the model's, and the soak fails on it: no fault is injected during a soak.
MODEL_SOURCES = frozenset({"native", "prompt"})
#: Where decisions carry no ``source`` field, the agent's /metrics counter
#: ``arena_agent_decisions_total{source=...}`` tells the same, with the same values.
MODEL_METRIC_SOURCES = MODEL_SOURCES
MAX_ERRORS_KEPT = 20


@dataclass(frozen=True)
class SoakOptions:
    """One field per command-line option."""

    agent_url: str = "http://127.0.0.1:5000"
    agents: int = 64
    ticks: int = 150
    max_seconds: float = 900.0
    warmup_ticks: int = 1
    request_timeout_s: float = 120.0
    agent_container: str | None = None
    seed: int = 0


@dataclass
class Memory:
    """The agent container's memory: as ``docker stats`` shows it, and its main process's VmRSS."""

    container_bytes: int
    rss_bytes: int | None


@dataclass
class SoakResult:
    ticks_planned: int
    ticks_done: int = 0
    decisions: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    tools: Counter[str] = field(default_factory=Counter)
    model_decisions: int = 0
    unsourced: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped_by_time: bool = False
    memory_before_warmup: Memory | None = None
    memory_start: Memory | None = None
    memory_end: Memory | None = None
    trace_store: dict[str, int] | None = None  # the /debug inspector's store at the end (None when it is off)

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: int) -> float:
        """The q-th percentile of tick latency (inclusive method: defined for any count >= 1)."""
        if len(self.latencies_s) < 2:
            return self.latencies_s[0] if self.latencies_s else float("nan")
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[q - 1]

    @property
    def not_from_model(self) -> int:
        """Decisions the model did not make (idle after a failure, the heuristic)."""
        return sum(self.failure_reasons.values())

    @property
    def ok(self) -> bool:
        """The soak's verdict: every tick answered well-formed, every decision the model's, at least one."""
        return (
            self.errors == 0
            and self.decisions > 0
            and self.model_decisions == self.decisions
            and self.not_from_model == 0
        )

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERRORS_KEPT:
            self.error_samples.append(message)


def require_loopback(url: str) -> None:
    """The soak sends thousands of requests: only to this machine."""
    host = urlparse(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"soak: cannot resolve {host!r} in {url}: {exc}") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(
            f"soak: {url} is not a loopback address ({sorted(addresses)}); the soak runs against this machine only"
        )


def observation(agent: int, tick: int, rng: random.Random) -> dict[str, Any]:
    """A foraging observation that changes every tick, so no two prompts are the same."""
    x, z = rng.uniform(-50, 50), rng.uniform(-50, 50)
    return {
        "agent_id": f"soak_{agent}",
        "tick": tick,
        "position": [x, 0.0, z],
        "rotation": [0.0, rng.uniform(0, 360), 0.0],
        "nearby_resources": [
            {
                "name": f"berry_{n}",
                "type": "berry",
                "position": [x + rng.uniform(-10, 10), 0.0, z + rng.uniform(-10, 10)],
            }
            for n in range(rng.randint(0, 4))
        ],
        "nearby_hazards": [{"name": "fire_1", "type": "fire", "position": [x + 6.0, 0.0, z], "damage": 10}],
        "inventory": [{"id": "item_1", "name": "berry", "quantity": tick % 5}],
        "health": rng.uniform(20, 100),
        "energy": rng.uniform(20, 100),
        "scenario_name": "foraging",
        "objective": {"description": "Collect resources while avoiding hazards", "time_limit": 600},
    }


def tick_body(agents: int, tick: int, rng: random.Random) -> dict[str, Any]:
    return {
        "tick": tick,
        "agents": [{"agent_id": f"soak_{n}", "observations": observation(n, tick, rng)} for n in range(agents)],
    }


def check_tick(response: httpx.Response, body: dict[str, Any], result: SoakResult) -> None:
    """Count the decisions of one tick, or one error naming what was wrong with the response."""
    tick = body["tick"]
    if response.status_code != 200:
        result.error(f"tick {tick}: HTTP {response.status_code}: {response.text[:300]}")
        return
    try:
        payload = response.json()
        actions = payload["actions"]
        assert payload["tick"] == tick, f"answered tick {payload['tick']}"
        wanted = [agent["agent_id"] for agent in body["agents"]]
        assert [a["agent_id"] for a in actions] == wanted, "actions not one per agent in request order"
        for action in actions:
            decision = action["action"]
            assert decision["tool"] in KNOWN_TOOLS, f"unknown tool {decision['tool']!r}"
            assert isinstance(decision["params"], dict) and isinstance(decision["reasoning"], str), decision
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        result.error(f"tick {tick}: malformed response ({type(exc).__name__}: {exc}): {response.text[:300]}")
        return
    for action in actions:
        decision = action["action"]
        result.tools[decision["tool"]] += 1
        if "source" not in decision:
            result.unsourced += 1  # counted from /metrics at the end (see run_soak)
        elif decision["source"] in MODEL_SOURCES:
            result.model_decisions += 1
        else:
            result.failure_reasons[f"{decision['source']}: {decision['reasoning'][:100]}"] += 1
    result.decisions += len(actions)


def decisions_by_source(client: httpx.Client) -> Counter[str]:
    """The agent's ``arena_agent_decisions_total`` summed per ``source`` label, from /metrics."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "arena_agent_decisions_total":
                counts[sample.labels["source"]] += int(sample.value)
    return counts


def count_from_metrics(result: SoakResult, before: Counter[str], after: Counter[str]) -> None:
    """Attribute the decisions that carried no ``source`` field by the /metrics counters' growth."""
    if not result.unsourced:
        return
    grown = after - before
    result.model_decisions += sum(grown[source] for source in MODEL_METRIC_SOURCES)
    for source, count in grown.items():
        if source not in MODEL_METRIC_SOURCES:
            result.failure_reasons[f"{source} (from /metrics)"] += count


def find_agent_container(agent_url: str, name: str | None) -> Container | None:
    """The container by name, else the one publishing the agent URL's port; None when not in Docker."""
    client = docker.from_env()
    if name:
        return client.containers.get(name)
    port = str(urlparse(agent_url).port or 80)
    for container in client.containers.list():
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            if any(binding["HostPort"] == port for binding in bindings or []):
                return container
    return None


def memory(container: Container | None) -> Memory | None:
    """``docker stats``' figure (usage minus inactive page cache) and VmRSS of the main process."""
    if container is None:
        return None
    stats = container.stats(stream=False, one_shot=True)["memory_stats"]
    detail = stats.get("stats", {})
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))  # cgroup v2, v1
    status = container.exec_run(["cat", "/proc/1/status"])
    rss = (
        next(
            (int(line.split()[1]) * 1024 for line in status.output.decode().splitlines() if line.startswith("VmRSS:")),
            None,
        )
        if status.exit_code == 0
        else None
    )
    return Memory(container_bytes=stats["usage"] - cache, rss_bytes=rss)


def run_soak(options: SoakOptions, container: Container | None = None, progress_every: int = 0) -> SoakResult:
    """Send ``options.ticks`` ticks of ``options.agents`` agents, one after another; stop early at ``max_seconds``.

    ``progress_every`` > 0 prints a progress line to stderr every that many ticks.
    """
    require_loopback(options.agent_url)
    rng = random.Random(options.seed)
    result = SoakResult(ticks_planned=options.ticks)
    result.memory_before_warmup = memory(container)
    with httpx.Client(base_url=options.agent_url, timeout=options.request_timeout_s) as client:
        for warmup in range(options.warmup_ticks):
            body = tick_body(options.agents, 1_000_000 + warmup, rng)
            client.post("/tick", json=body)  # not counted
        result.memory_start = memory(container)
        counted_from = decisions_by_source(client)
        started = time.monotonic()
        for tick in range(options.ticks):
            if time.monotonic() - started > options.max_seconds:
                result.stopped_by_time = True
                break
            body = tick_body(options.agents, tick, rng)
            sent = time.monotonic()
            try:
                response = client.post("/tick", json=body)
            except httpx.HTTPError as exc:
                result.error(f"tick {tick}: {type(exc).__name__}: {exc}")
            else:
                result.latencies_s.append(time.monotonic() - sent)
                check_tick(response, body, result)
            result.ticks_done += 1
            if progress_every and result.ticks_done % progress_every == 0:
                print(
                    f"soak: {result.ticks_done}/{options.ticks} ticks, {time.monotonic() - started:.0f} s, "
                    f"{result.errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
        result.elapsed_s = time.monotonic() - started
        count_from_metrics(result, counted_from, decisions_by_source(client))
        stats = client.get("/debug/stats")
        result.trace_store = stats.json() if stats.status_code == 200 else None
    result.memory_end = memory(container)
    return result


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def _growth(start: int | None, end: int | None) -> str:
    return "n/a" if not start or end is None else f"{(end - start) / start * 100:+.1f}%"


def report(options: SoakOptions, result: SoakResult) -> str:
    """The figures, one per line, ready to paste into the README."""
    lines = [
        f"soak: {options.agents} agents x {result.ticks_done}/{options.ticks} ticks against {options.agent_url}"
        + (f" (stopped by --max-seconds {options.max_seconds:g})" if result.stopped_by_time else ""),
        f"errors: {result.errors} (non-200 or malformed responses; goal 0)",
        *(f"  {sample}" for sample in result.error_samples),
        f"decisions: {result.decisions} in {result.elapsed_s:.1f} s = {result.decisions_per_s:.2f} decisions/s",
        f"tick latency: p50 {result.percentile(50):.2f} s, p95 {result.percentile(95):.2f} s, "
        f"max {max(result.latencies_s, default=float('nan')):.2f} s",
        "tools: " + ", ".join(f"{tool} {count}" for tool, count in result.tools.most_common()),
        f"made by the model: {result.model_decisions}/{result.decisions}; not by the model (a failed or late "
        f"call): {result.not_from_model}",
        *(f"  x{count}: {reason}" for reason, count in result.failure_reasons.most_common(5)),
        "verdict: "
        + (
            "ok"
            if result.ok
            else "FAILED (errors, or decisions the model did not make: no fault was injected, so each one is a failure)"
        ),
    ]
    start, end, before = result.memory_start, result.memory_end, result.memory_before_warmup
    if start and end and before:
        lines += [
            f"agent memory (docker stats): before warm-up {_mib(before.container_bytes)}, start "
            f"{_mib(start.container_bytes)}, end {_mib(end.container_bytes)}, "
            f"growth {_growth(start.container_bytes, end.container_bytes)} (goal < 10%)",
            f"agent RSS (pid 1 VmRSS): before warm-up {_mib(before.rss_bytes)}, start {_mib(start.rss_bytes)}, "
            f"end {_mib(end.rss_bytes)}, growth {_growth(start.rss_bytes, end.rss_bytes)}",
        ]
    else:
        lines.append("agent memory: n/a (no agent container found; pass --agent-container)")
    store = result.trace_store
    lines.append(
        "decision inspector: off"
        if store is None
        else (
            f"decision inspector store: {store['traces']} traces of {store['agents']} agents, {_mib(store['bytes'])} "
            f"of its {_mib(store['max_bytes'])} cap ({store['dropped']} dropped)"
        )
    )
    return "\n".join(lines)
