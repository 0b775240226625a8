"""vLLM slower than the tick deadline (issue 5): the tick still answers on time, idle for the late agents.

The FaultServer stands in for a slow engine ("hang" mode). ``test_agent_service`` already shows
that a total hang makes every agent idle; these tests cover what it does not: agents queued
behind ``agent.max_concurrency`` are late too, agents that made it in time keep their
decisions, the tick returns near the deadline rather than after the hang, and the call slots
held by the abandoned calls are given back (otherwise every tick after a slow one would idle).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fault_server import FaultServer
from tests.support.service import MOVE, agent_client, metric, tick_body

DEADLINE_S = 1.0
HANG_S = 30.0
#: Far below the hang, far above the deadline: "on time" without a tight wall-clock assert.
ON_TIME_BOUND_S = DEADLINE_S + 9
#: A written call, so an answer that arrives in time (after a short hang) is a real decision.
WRITTEN_CALL = f"<tool_call>\n{json.dumps({'name': 'move_to', 'arguments': MOVE})}\n</tool_call>"


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", tool_args=MOVE, mode="hang", hang_s=HANG_S) as server:
        yield server


def warm_up(client: httpx.Client, fault: FaultServer) -> None:
    """One quick decision first: a cold agent's first model call spends ~1 s setting up its HTTP
    client, which would eat most of a 1 s deadline before any request reaches the engine."""
    mode, fault.mode = fault.mode, "tool_call"
    give_up = time.monotonic() + 20
    while client.post("/observe", json={"agent_id": "warm-up", "position": [0, 0, 0]}).json()["tool"] != "move_to":
        assert time.monotonic() < give_up, "the agent never decided against the instant FaultServer"
    fault.mode = mode
    fault.requests.clear()


def test_queued_agents_are_late_too_and_the_tick_returns_on_time(fault: FaultServer) -> None:
    ids = [f"a{n}" for n in range(6)]  # 2 calls in flight, 4 waiting for a slot: all past the deadline
    with agent_client(fault, f"agent.tick_deadline_s={DEADLINE_S:g}", "agent.max_concurrency=2") as client:
        warm_up(client, fault)
        deadlines_before = metric(client, "arena_agent_backend_errors_total", kind="deadline")
        started = time.monotonic()
        response = client.post("/tick", json=tick_body(ids))
        elapsed = time.monotonic() - started

        assert response.status_code == 200, response.text
        actions = response.json()["actions"]
        assert [action["agent_id"] for action in actions] == ids
        for action in actions:
            assert action["action"] == {  # nothing in sight: the fallback's last resort
                "tool": "idle",
                "params": {},
                "source": "fallback",
                "reasoning": "fallback: idle, nothing in sight to move to (model call timed out)",
            }
        assert elapsed < ON_TIME_BOUND_S, f"the tick took {elapsed:.1f} s with a {DEADLINE_S:g} s deadline"
        assert metric(client, "arena_agent_backend_errors_total", kind="deadline") - deadlines_before == len(ids)
        assert len(fault.requests) == 2  # the queued agents never reached the engine


def test_agents_answered_in_time_keep_their_decision_and_only_late_ones_idle(fault: FaultServer) -> None:
    # One call at a time, each answered after 0.5 s: the first agent has 2.5 s to spare, the last
    # would need 3 s. Which agents make it depends on the machine; that both kinds occur does not.
    fault.hang_s, fault.text = 0.5, WRITTEN_CALL
    ids = [f"a{n}" for n in range(6)]
    with agent_client(fault, "agent.tick_deadline_s=1.8", "agent.max_concurrency=1") as client:
        warm_up(client, fault)
        response = client.post("/tick", json=tick_body(ids))

    assert response.status_code == 200, response.text
    decisions = [action["action"] for action in response.json()["actions"]]
    assert [action["agent_id"] for action in response.json()["actions"]] == ids
    decided = [d for d in decisions if d["source"] == "prompt"]
    late = [d for d in decisions if d["source"] == "fallback"]
    assert len(decided) + len(late) == len(ids), decisions
    assert decided and all(d["params"] == MOVE for d in decided), decisions
    assert late and all(d["reasoning"].endswith("(model call timed out)") for d in late), decisions
    assert decisions[0]["tool"] == "move_to", "the first agent had the most time"


def test_slots_held_by_late_calls_are_released_for_the_next_tick(fault: FaultServer) -> None:
    with agent_client(fault, f"agent.tick_deadline_s={DEADLINE_S:g}", "agent.max_concurrency=2") as client:
        warm_up(client, fault)
        slow = client.post("/tick", json=tick_body(["a", "b", "c", "d"], tick=1))
        assert {a["action"]["tool"] for a in slow.json()["actions"]} == {"idle"}

        fault.mode = "tool_call"  # the engine recovers; the hung requests are still sleeping server-side
        fast = client.post("/tick", json=tick_body(["a", "b", "c", "d"], tick=2))

        assert fast.status_code == 200, fast.text
        for action in fast.json()["actions"]:
            assert (action["action"]["tool"], action["action"]["params"]) == ("move_to", MOVE), action
        assert metric(client, "arena_agent_backend_requests_in_flight") == 0
