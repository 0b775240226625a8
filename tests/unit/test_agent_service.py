"""The agent service over real HTTP on loopback, deciding through the real backend against the FaultServer.

Every fault the FaultServer injects must reach the game as the fallback with a generic reason and HTTP 200;
the details (exception text, URLs) go to the log and the failure kind to /metrics only.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.support.fault_server import FaultServer
from tests.support.observations import OBSERVATION
from tests.support.service import MOVE, agent_client, cached_settings, metric, tick_body


def test_observe_returns_the_models_tool_call(agent: httpx.Client, fault: FaultServer) -> None:
    response = agent.post("/observe", json=OBSERVATION)

    assert response.status_code == 200
    assert response.json() == {
        "agent_id": "forager_1",
        "tool": "move_to",
        "params": MOVE,
        "source": "native",
        "reasoning": 'model: move_to (3.0, 0.0, 4.0), 5.0 away toward "berry_1"',
    }
    [sent] = fault.requests
    assert sent["tool_choice"] == "required"
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["move_to", "idle"]  # nothing within reach
    system, user = sent["messages"]
    assert system["content"] == cached_settings().scene.system_prompt
    assert '"berry_1" berry (3,0,4) 5 away' in user["content"]


def test_tick_of_8_answers_in_input_order(agent: httpx.Client, fault: FaultServer) -> None:
    ids = [f"agent_{n}" for n in (5, 2, 7, 0, 3, 6, 1, 4)]
    response = agent.post("/tick", json=tick_body(ids, tick=12))

    assert response.status_code == 200
    body = response.json()
    assert body["tick"] == 12
    assert [action["agent_id"] for action in body["actions"]] == ids
    assert all(
        action["action"]["tool"] == "move_to"
        and action["action"]["params"] == MOVE
        and action["action"]["source"] == "native"
        for action in body["actions"]
    )
    assert len(fault.requests) == 8
    assert metric(agent, "arena_agent_decisions_total", tool="move_to", source="native") == 8


def test_tick_agents_are_decided_concurrently(fault: FaultServer) -> None:
    """8 agents whose calls take 1 s each (two 0.5 s requests: native, then the fallback) finish together."""
    fault.mode, fault.hang_s = "hang", 0.5
    with agent_client(fault, "agent.tick_deadline_s=30") as client:
        started = time.monotonic()
        response = client.post("/tick", json=tick_body([f"a{n}" for n in range(8)]))
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert len(response.json()["actions"]) == 8
    assert elapsed < 4, f"a tick of 8 one-second decisions took {elapsed:.1f} s: not concurrent"


def test_concurrency_is_bounded_by_max_concurrency(fault: FaultServer) -> None:
    """With one slot, 3 one-second decisions queue: the tick takes ~3 s instead of ~1 s."""
    fault.mode, fault.hang_s = "hang", 0.5
    with agent_client(fault, "agent.max_concurrency=1", "agent.tick_deadline_s=30") as client:
        started = time.monotonic()
        client.post("/tick", json=tick_body(["a", "b", "c"]))
        assert time.monotonic() - started > 2.0


@pytest.mark.parametrize(
    ("mode", "detail", "reason"),
    [
        ("error_500", "backend error (ServerError)", "model call failed"),
        ("text", "no valid tool call", "model gave no usable call"),
        ("malformed_args", "not JSON", "model gave no usable call"),
        ("invalid_args", "violate its schema", "model gave no usable call"),
        # prompt-based fallback, then the FaultServer answers prose
        ("reject_tools", "no valid tool call", "model gave no usable call"),
    ],
)
def test_model_and_engine_failures_become_the_fallback_with_a_generic_reason(
    agent: httpx.Client, fault: FaultServer, mode: str, detail: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    fault.mode = mode
    observe = agent.post("/observe", json=OBSERVATION)
    tick = agent.post("/tick", json=tick_body(["a", "b"]))

    assert observe.status_code == 200 and tick.status_code == 200
    moved = observe.json()  # OBSERVATION shows berry_1 5.0 away: the SDK's fallback walks there
    assert (moved["tool"], moved["params"], moved["source"]) == (
        "move_to",
        {"target_position": [3.0, 0.0, 4.0]},
        "fallback",
    )
    assert moved["reasoning"] == f'fallback: moving to "berry_1" at 5.0 ({reason})'
    for action in tick.json()["actions"]:  # nothing in sight: idle, still marked as the fallback
        decision = action["action"]
        assert (decision["tool"], decision["params"], decision["source"]) == ("idle", {}, "fallback")
        assert decision["reasoning"] == f"fallback: idle, nothing in sight to move to ({reason})"
    assert detail in caplog.text  # the details: in the log only
    assert metric(agent, "arena_agent_decisions_total", tool="move_to", source="fallback") == 1
    assert metric(agent, "arena_agent_decisions_total", tool="idle", source="fallback") == 2


def test_with_the_fallback_off_failures_become_idle(fault: FaultServer) -> None:
    fault.mode = "error_500"
    with agent_client(fault, "agent.fallback.enabled=false") as client:
        decision = client.post("/observe", json=OBSERVATION).json()
        assert (decision["tool"], decision["source"]) == ("idle", "idle_after_failure")
        assert decision["reasoning"] == "model call failed"
        assert metric(client, "arena_agent_backend_errors_total", kind="ServerError") == 1
        assert metric(client, "arena_agent_decisions_total", tool="idle", source="idle_after_failure") == 1


def test_a_call_written_as_text_is_used_and_counted_as_prompt(agent: httpx.Client, fault: FaultServer) -> None:
    fault.mode = "text_call"
    decision = agent.post("/observe", json=OBSERVATION).json()
    assert (decision["tool"], decision["params"], decision["source"]) == ("move_to", MOVE, "prompt")
    assert decision["reasoning"].startswith("model: move_to")
    assert metric(agent, "arena_agent_decisions_total", tool="move_to", source="prompt") == 1


def test_unreachable_server_and_unserved_model_become_idle(fault: FaultServer) -> None:
    with agent_client(fault, "backend.model=not-served") as client:
        decision = client.post("/observe", json=OBSERVATION).json()
        assert decision["source"] == "fallback" and decision["reasoning"].endswith("(model call failed)")
        assert metric(client, "arena_agent_backend_errors_total", kind="ModelNotServedError") == 1
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        with agent_client(fault, f"backend.api_base=http://127.0.0.1:{port}/v1") as client:
            response = client.post("/observe", json=OBSERVATION)
            assert response.status_code == 200
            assert response.json()["reasoning"].endswith("(model call failed)")
            assert str(port) not in response.json()["reasoning"]  # no internal address sent to the game
            assert metric(client, "arena_agent_backend_errors_total", kind="BackendConnectionError") == 1


def test_a_hang_past_the_deadline_returns_idle_for_every_agent(fault: FaultServer) -> None:
    fault.mode, fault.hang_s = "hang", 30
    with agent_client(fault, "agent.tick_deadline_s=1") as client:
        response = client.post("/tick", json=tick_body(["a", "b", "c"]))
        assert response.status_code == 200
        for action in response.json()["actions"]:
            assert action["action"]["tool"] == "idle"
            assert action["action"]["reasoning"].endswith("(model call timed out)")
        assert metric(client, "arena_agent_backend_errors_total", kind="deadline") == 3
        assert metric(client, "arena_agent_backend_requests_in_flight") == 0  # the hung calls were cancelled


def test_ready_reports_the_backend_and_health_does_not_depend_on_it(agent: httpx.Client, fault: FaultServer) -> None:
    assert agent.get("/ready").json() == {"ready": True, "models": ["tiny"], "tools_seen_in": "unknown"}  # no /tokenize
    fault.mode = "health_down"
    ready = agent.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False and "503" in ready.json()["reason"]
    assert agent.get("/health").json() == {"status": "ok"}


def test_ready_names_a_model_the_server_does_not_serve(fault: FaultServer) -> None:
    with agent_client(fault, "backend.model=other") as client:
        ready = client.get("/ready")
    assert ready.status_code == 503 and "'other' not served" in ready.json()["reason"]


def test_metrics_count_decisions_latency_and_errors(agent: httpx.Client, fault: FaultServer) -> None:
    agent.post("/observe", json=OBSERVATION)
    fault.mode = "error_500"
    agent.post("/observe", json=OBSERVATION)

    assert metric(agent, "arena_agent_decisions_total", tool="move_to", source="native") == 1
    assert metric(agent, "arena_agent_decisions_total", tool="move_to", source="fallback") == 1
    assert metric(agent, "arena_agent_backend_errors_total", kind="ServerError") == 1
    assert metric(agent, "arena_agent_decision_latency_seconds_count") == 2
    assert agent.get("/metrics").headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_413_and_the_service_keeps_serving(fault: FaultServer, chunked: bool) -> None:
    padding = "x" * 3000
    body = ('{"agent_id": "a", "position": [0, 0, 0], "custom": {"pad": "' + padding + '"}}').encode()
    content = iter([body[:1000], body[1000:]]) if chunked else body  # an iterator is sent without Content-Length
    with agent_client(fault, "agent.max_body_bytes=2048") as client:
        response = client.post("/observe", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert client.post("/observe", json=OBSERVATION).json()["tool"] == "move_to"


def test_too_many_agents_is_413_naming_the_field(fault: FaultServer) -> None:
    with agent_client(fault, "agent.max_agents_per_tick=2") as client:
        response = client.post("/tick", json=tick_body(["a", "b", "c"]))
        assert response.status_code == 413
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "agents"] and "at most 2" in error["msg"]
        assert fault.requests == []
        assert client.post("/tick", json=tick_body(["a", "b"])).status_code == 200


def test_root_answers_as_the_sdks_server_with_its_counters(agent: httpx.Client) -> None:
    """Agent Arena's SDK answers GET / with {status, debug, metrics: {total_ticks, total_observations}}."""
    assert agent.post("/observe", json=OBSERVATION).status_code == 200
    assert agent.post("/tick", json=tick_body(["a", "b", "c"])).status_code == 200
    root = agent.get("/").json()
    assert set(root) == {"status", "debug", "metrics"} and root["status"] == "running"
    assert isinstance(root["debug"], bool)
    assert root["metrics"] == {"total_ticks": 2, "total_observations": 4}


@pytest.mark.parametrize("event_type", ["damage", "trapped", "collision"])
def test_the_games_event_types_are_counted_by_name(agent: httpx.Client, event_type: str) -> None:
    """What the game POSTs (bf2cafb): damage (base_hazard.gd), trapped (pit.gd), collision (simple_agent.gd)."""
    before = metric(agent, "arena_agent_experiences_total", event_type=event_type)
    body = {
        "agent_id": "a1",
        "tick": 3,
        "event_type": event_type,
        "description": "Fell into pit and trapped",
        "position": [1.0, 0.0, 2.0],
        "object_name": "pit_1",
        "damage_taken": 5.0,
        "metadata": {"trap_duration": 3, "hazard_type": "pit"},
    }
    assert agent.post("/experience", json=body).json() == {"success": True}
    assert metric(agent, "arena_agent_experiences_total", event_type=event_type) == before + 1
    assert metric(agent, "arena_agent_experiences_total", event_type="other") == 0
