"""Engine and service faults against the real CPU stack (issue 5): the game always gets an action.

The tests run in file order and share the session stack, so they form one story: vLLM is
killed during a tick, started again (the agent recovers by itself, without a restart), then
the agent container is restarted. The module fixture puts both services back to ready
whatever happens, because the other stack tests share this stack.

vLLM slower than the tick deadline needs no stack: see ``tests/unit/test_agent_deadline.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from docker.models.containers import Container
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from testcontainers.core.wait_strategies import (
    HealthcheckWaitStrategy,
    HttpWaitStrategy,
)

from arena_vllm.agent.policy import GENERIC_REASONS, MODEL_CALL_FAILED
from tests.support.decisions import TOOLS, assert_model_decision
from tests.support.observations import OBSERVATION
from tests.support.service import metric
from tests.support.soak import SoakOptions, report, run_soak
from tests.support.stack import Stack

#: What the game may be told when the model gave no decision (policy.py keeps the details from it).
GAME_REASONS = frozenset({*GENERIC_REASONS.values(), MODEL_CALL_FAILED})

AGENT_PORT = 5000  # inside the container; the wait strategies map it to the published port
#: Generous on purpose: a 2-core CI runner restarts vLLM in ~30-60 s; issue 5's target is 60 s.
RECOVERY_BOUND_S = 300
AGENT_RESTART_BOUND_S = 120
TICK_AGENTS = 16  # enough model calls that some are surely in flight when vLLM dies


def tick_body(tick: int, agents: int = TICK_AGENTS) -> dict[str, Any]:
    ids = [f"forager_{n}" for n in range(agents)]
    return {
        "tick": tick,
        "agents": [
            {"agent_id": i, "observations": {**OBSERVATION, "agent_id": i, "position": [float(n), 0.0, 0.0]}}
            for n, i in enumerate(ids)
        ],
    }


def in_flight(client: httpx.Client) -> float:
    """The agent's count of model calls in flight, from /metrics."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "arena_agent_backend_requests_in_flight":
                return sample.value
    return 0.0


@dataclass
class Published:
    """A docker SDK container as a testcontainers wait target, with its real published ports.

    testcontainers 4.15's ComposeContainer maps no ports (``get_exposed_port`` returns the
    container port) and has no ``attrs`` to read health from, so its wait strategies cannot
    target a compose service directly.
    """

    container: Container

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        self.container.reload()
        return int(self.container.ports[f"{port}/tcp"][0]["HostPort"])

    def get_wrapped_container(self) -> Container:
        return self.container

    def get_logs(self) -> tuple[bytes, bytes]:
        return self.container.logs(stderr=False), self.container.logs(stdout=False)

    def reload(self) -> None:
        self.container.reload()

    @property
    def status(self) -> str:
        return self.container.status


def started_at(stack: Stack, service: str) -> str:
    container = stack.container(service)
    container.reload()
    return container.attrs["State"]["StartedAt"]


def wait_agent_ready(stack: Stack, bound_s: float) -> float:
    """Seconds until the agent's /ready is 200; on a timeout, the error carries both services' logs."""
    started = time.monotonic()
    strategy = HttpWaitStrategy(AGENT_PORT, "/ready").with_startup_timeout(bound_s).with_poll_interval(0.5)
    try:
        strategy.wait_until_ready(Published(stack.container("agent")))
    except TimeoutError as exc:
        logs = stack.compose_cmd("logs", "--no-color", "--tail", "40").stdout
        last = httpx.get(f"{stack.agent_url}/ready", timeout=10)
        raise AssertionError(f"{exc}\nlast /ready: {last.status_code} {last.text}\n--- logs ---\n{logs}") from None
    return time.monotonic() - started


def poll(check: Callable[[], Any], bound_s: float, what: str) -> float:
    """Call ``check`` until it stops raising AssertionError; seconds taken. Each call is a real
    request that takes a while, so there is no sleep; past ``bound_s`` the last failure is raised."""
    started = time.monotonic()
    while True:
        try:
            check()
            return time.monotonic() - started
        except AssertionError as exc:
            if time.monotonic() - started > bound_s:
                raise AssertionError(f"{what}: not within {bound_s} s; last failure: {exc}") from exc


def model_decides(agent: httpx.Client) -> None:
    """One /observe answered by the model (not the fallback); AssertionError otherwise, for :func:`poll`."""
    response = agent.post("/observe", json=OBSERVATION)
    assert response.status_code == 200, response.text
    assert_model_decision(response.json())


def ensure_vllm_running(stack: Stack) -> None:
    vllm = stack.container("vllm")
    vllm.reload()
    if vllm.status != "running":
        vllm.start()


@pytest.fixture(scope="module", autouse=True)
def leaves_the_stack_ready(stack: Stack) -> Iterator[None]:
    """Other stack tests share the stack: whatever failed here, both services end up running and ready."""
    yield
    ensure_vllm_running(stack)
    agent = stack.container("agent")
    agent.reload()
    if agent.status != "running":
        agent.start()
    wait_agent_ready(stack, RECOVERY_BOUND_S)


@pytest.fixture
def agent(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.agent_url, timeout=120) as client:
        yield client


def assert_idle_with_reason(decision: dict[str, Any]) -> None:
    """An engine failure as the game sees it: the policy's fallback (``source``), a generic reason for it,
    and nothing of the deployment (the details go to the log and /metrics)."""
    assert decision["source"] == "fallback", decision
    assert any(f"({reason})" in decision["reasoning"] for reason in GAME_REASONS), decision
    assert "vllm" not in decision["reasoning"] and "http" not in decision["reasoning"], decision


def test_vllm_killed_mid_tick_every_agent_gets_an_action_and_ready_turns_false(
    stack: Stack, agent: httpx.Client
) -> None:
    wait_agent_ready(stack, RECOVERY_BOUND_S)
    agent_started = started_at(stack, "agent")
    vllm = stack.container("vllm")

    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=stack.agent_url, timeout=120) as ticker:
        in_progress = pool.submit(ticker.post, "/tick", json=tick_body(tick=100))
        give_up = time.monotonic() + 60
        while in_flight(agent) == 0:  # kill only once the tick's model calls are on the wire
            assert not in_progress.done(), (
                f"the tick ended before any call was seen in flight: {in_progress.result().text}"
            )
            assert time.monotonic() < give_up, "no model call in flight within 60 s"
            time.sleep(0.05)
        vllm.kill()
        response = in_progress.result(timeout=120)

    assert response.status_code == 200, response.text
    actions = response.json()["actions"]
    assert [a["agent_id"] for a in actions] == [f"forager_{n}" for n in range(TICK_AGENTS)]
    idle = [a["action"] for a in actions if a["action"]["source"] == "fallback"]
    assert idle, "vLLM died with calls in flight, yet every agent got a model decision"
    for action in actions:  # each one either made it before the kill or is idle with the reason
        if action["action"]["source"] == "fallback":
            assert_idle_with_reason(action["action"])
        else:
            assert_model_decision(action["action"])

    # With vLLM gone: a whole tick of idles, promptly, still HTTP 200; /observe too.
    after = agent.post("/tick", json=tick_body(tick=101, agents=4))
    assert after.status_code == 200, after.text
    for action in after.json()["actions"]:
        assert_idle_with_reason(action["action"])
        assert f"({MODEL_CALL_FAILED})" in action["action"]["reasoning"], action
    assert metric(agent, "arena_agent_backend_errors_total", kind="BackendConnectionError") >= 4  # the detail
    observed = agent.post("/observe", json=OBSERVATION)
    assert observed.status_code == 200 and observed.json()["source"] == "fallback", observed.text

    ready = agent.get("/ready")
    assert ready.status_code == 503, ready.text
    assert ready.json()["ready"] is False
    assert "vllm:8000" in ready.json()["reason"], ready.json()  # the reason names what is unreachable
    assert agent.get("/health").json() == {"status": "ok"}
    assert started_at(stack, "agent") == agent_started, "the agent restarted when vLLM died"

    # The soak, run now, must see it: HTTP 200s, yet no decision from the model -> FAILED.
    options = SoakOptions(agent_url=stack.agent_url, agents=2, ticks=2, warmup_ticks=0, max_seconds=120)
    soak = run_soak(options)
    assert soak.errors == 0 and soak.decisions == 4, soak.error_samples  # the agent answered every tick...
    assert soak.model_decisions == 0 and soak.not_from_model == 4, soak.failure_reasons
    assert not soak.ok and "verdict: FAILED" in report(options, soak)  # ...and the soak still fails


def test_vllm_started_again_the_agent_recovers_without_a_restart(
    stack: Stack, agent: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    vllm = stack.container("vllm")
    vllm.reload()
    if vllm.status == "running":  # run on its own: make the fault this test recovers from
        vllm.kill()
    assert agent.get("/ready").status_code == 503
    agent_started = started_at(stack, "agent")

    started = time.monotonic()
    vllm.start()
    ready_s = wait_agent_ready(stack, RECOVERY_BOUND_S)

    poll(lambda: model_decides(agent), RECOVERY_BOUND_S, "a valid decision after vLLM restarted")
    valid_s = time.monotonic() - started

    tick = agent.post("/tick", json=tick_body(tick=102, agents=8))
    assert tick.status_code == 200, tick.text
    for action in tick.json()["actions"]:
        assert_model_decision(action["action"])
    assert started_at(stack, "agent") == agent_started, "the agent was restarted; it must recover by itself"
    figure = f"vLLM start -> agent /ready {ready_s:.1f} s, -> first valid decision {valid_s:.1f} s (target 60 s)"
    stack.log.append(figure)
    with capsys.disabled():
        print(f"\n[faults] {figure}")


def test_agent_container_restarted_mid_run_comes_back_healthy_and_serves(stack: Stack, agent: httpx.Client) -> None:
    ensure_vllm_running(stack)
    wait_agent_ready(stack, RECOVERY_BOUND_S)
    container = stack.container("agent")
    before = started_at(stack, "agent")

    container.restart(timeout=10)
    HealthcheckWaitStrategy().with_startup_timeout(AGENT_RESTART_BOUND_S).wait_until_ready(Published(container))
    wait_agent_ready(stack, AGENT_RESTART_BOUND_S)  # the API key is read from its secret again

    assert started_at(stack, "agent") != before, "the container did not restart"
    with httpx.Client(base_url=stack.agent_url, timeout=120) as fresh:  # the old connections died with it
        observed = fresh.post("/observe", json=OBSERVATION)
        assert observed.status_code == 200, observed.text
        assert_model_decision(observed.json())
        tick = fresh.post("/tick", json=tick_body(tick=103, agents=4))
        assert tick.status_code == 200, tick.text
        assert [a["agent_id"] for a in tick.json()["actions"]] == [f"forager_{n}" for n in range(4)]
        for action in tick.json()["actions"]:
            assert action["action"]["tool"] in TOOLS, action
            assert_model_decision(action["action"])


#: Kills vLLM's engine process from inside the container, as an out-of-memory kill or a segfault
#: would: SIGKILL, no clean shutdown. (PID 1, the API server, ignores signals sent from inside its
#: own PID namespace; the API server's watchdog then exits on the dead engine.)
KILL_ENGINE = r"""
import os, signal
killed = [int(pid) for pid in filter(str.isdigit, os.listdir("/proc"))
          if open(f"/proc/{pid}/cmdline", "rb").read().startswith(b"VLLM::EngineCore")]  # not this script
for pid in killed:
    os.kill(pid, signal.SIGKILL)
print(killed)
"""


def test_a_crash_inside_vllm_restarts_it_and_the_agent_recovers_without_a_restart(
    stack: Stack, agent: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """``restart: unless-stopped`` at work: Docker restarts a container that died by itself (not ``docker kill``)."""
    ensure_vllm_running(stack)
    wait_agent_ready(stack, RECOVERY_BOUND_S)
    vllm = stack.container("vllm")
    vllm.reload()
    restarts, agent_started = vllm.attrs["RestartCount"], started_at(stack, "agent")

    killed = vllm.exec_run(["python3", "-c", KILL_ENGINE])
    assert killed.exit_code == 0 and killed.output.strip() not in (b"", b"[]"), killed.output
    crashed = time.monotonic()

    def restarted() -> None:
        vllm.reload()
        assert vllm.attrs["RestartCount"] > restarts, f"RestartCount still {vllm.attrs['RestartCount']}"

    restart_s = poll(restarted, RECOVERY_BOUND_S, "Docker restarting the crashed vLLM container")
    assert vllm.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    ready_s = wait_agent_ready(stack, RECOVERY_BOUND_S)

    poll(lambda: model_decides(agent), RECOVERY_BOUND_S, "a valid decision after the crash")
    assert started_at(stack, "agent") == agent_started, "the agent was restarted; it must recover by itself"
    # The restarted server still requires the key (its --config file was written again).
    assert httpx.get(f"{stack.vllm_api_base}/models", timeout=30).status_code == 401
    figure = (
        f"engine killed -> container restarted {restart_s:.1f} s, -> agent /ready "
        f"{time.monotonic() - crashed:.1f} s (ready wait {ready_s:.1f} s)"
    )
    stack.log.append(figure)
    with capsys.disabled():
        print(f"\n[faults] {figure}")


def test_a_logprobs_request_from_any_client_does_not_kill_the_engine(stack: Stack, agent: httpx.Client) -> None:
    """vLLM compiles its logprobs helper (v1/sample/ops/logprobs.py) with torch.compile on first use, and the CPU
    image has no C++ compiler: before Dockerfile.vllm set TORCH_COMPILE_DISABLE, one request asking for logprobs
    killed the engine (EngineDeadError, every request 500 until Docker restarted the container). Now it is
    answered, and the agent's next decision is the model's."""
    ensure_vllm_running(stack)
    wait_agent_ready(stack, RECOVERY_BOUND_S)
    client = OpenAI(base_url=stack.vllm_api_base, api_key=stack.api_key, max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model=stack.served_model,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        logprobs=True,
        top_logprobs=2,
    )
    assert len(reply.choices[0].logprobs.content) == reply.usage.completion_tokens > 0
    started = started_at(stack, "vllm")
    assert_model_decision(agent.post("/observe", json=OBSERVATION).json())
    assert started_at(stack, "vllm") == started, "vLLM was restarted"
