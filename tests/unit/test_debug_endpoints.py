"""The decision inspector over real HTTP: Agent Arena's /debug/* shapes and parameters, the page, the on/off rule.

The agent decides through the real backend against the FaultServer (a vLLM look-alike), so
the traces hold what was really sent and answered; its faults give fallback decisions.
"""

from __future__ import annotations

import httpx
import pytest

from arena_vllm.agent.debug import PAGE_POLICY, inspector_enabled, is_loopback
from arena_vllm.agent.traces import ENTRY_OVERHEAD
from ops.compose import REPO
from tests.support.fault_server import FaultServer
from tests.support.inspector import API_KEY, HOSTILE, inspector, inspector_settings, observation
from tests.support.sdk_debug import SDK_QUERY, SDK_RESPONSES, assert_shape
from tests.support.service import MOVE, cached_settings


def play(client: httpx.Client) -> None:
    """Three ticks of two agents; a1 gains berry_2 at tick 2 and loses berry_1 at tick 3."""
    seen = {1: ["berry_1"], 2: ["berry_1", "berry_2"], 3: ["berry_2"]}
    for tick, resources in seen.items():
        body = {
            "tick": tick,
            "agents": [
                {"agent_id": agent, "observations": observation(agent, tick, resources)} for agent in ("a1", "a2")
            ],
        }
        assert client.post("/tick", json=body).status_code == 200


def test_every_endpoint_answers_in_the_sdks_shape(fault: FaultServer) -> None:
    with inspector(fault) as client:
        play(client)
        for path, sdk in SDK_RESPONSES.items():
            response = client.post(path) if path.endswith("reset") else client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert_shape(response.json(), sdk, path)
        assert client.get("/debug/episodes", params={"agent_id": "a1"}).json() == {"agent_id": "a1", "episodes": []}


def test_prompts_hold_what_the_model_was_sent_and_answered(fault: FaultServer) -> None:
    with inspector(fault, "backend.function_calling.format=openai") as client:  # the request lists its tools
        play(client)
        captures = client.get("/debug/prompts", params={"agent_id": "a1"}).json()
        assert captures["count"] == 3 and [c["tick"] for c in captures["captures"]] == [1, 2, 3]
        stages = {e["stage"]: e["data"] for e in captures["captures"][-1]["entries"]}
        [sent] = [
            r
            for r in fault.requests
            if any(stages["prompt_building"]["final_prompt"] in m["content"] for m in r["messages"])
        ]
        assert stages["prompt_building"]["estimated_tokens"] == stages["prompt_building"]["prompt_tokens"] > 0  # usage
        assert [t["name"] for t in stages["llm_request"]["tools"]] == [t["function"]["name"] for t in sent["tools"]]
        assert stages["llm_response"]["metadata"]["tool_call"] == {"name": "move_to", "arguments": MOVE}
        assert stages["llm_response"]["latency_ms"] > 0
        assert stages["decision"]["tool"] == "move_to" and stages["decision"]["total_latency_ms"] > 0
        one = client.get("/debug/prompts", params={"agent_id": "a1", "tick": 2}).json()
        assert [(c["agent_id"], c["tick"]) for c in one["captures"]] == [("a1", 2)]
        ranged = client.get("/debug/prompts", params={"tick_start": 2, "tick_end": 3}).json()
        assert [(c["tick"], c["agent_id"]) for c in ranged["captures"]] == [(2, "a1"), (2, "a2"), (3, "a1"), (3, "a2")]


def test_traces_filter_by_agent_ticks_tool_and_limit(fault: FaultServer) -> None:
    with inspector(fault) as client:
        play(client)
        get = lambda **params: client.get("/debug/traces", params=params).json()  # noqa: E731
        assert get()["count"] == 6
        assert {t["agent_id"] for t in get(agent_id="a2")["traces"]} == {"a2"}
        assert [t["tick"] for t in get(agent_id="a1", tick_start=2, tick_end=3)["traces"]] == [2, 3]
        assert [t["tick"] for t in get(limit=2)["traces"]] == [3, 3]
        assert get(tool="move_to")["count"] == 6 and get(tool="collect")["count"] == 0
        for bad in (0, 1001):
            assert client.get("/debug/traces", params={"limit": bad}).status_code == 422


def test_changes_say_what_came_into_and_out_of_view(fault: FaultServer) -> None:
    with inspector(fault) as client:
        play(client)
        changes = client.get("/debug/changes", params={"agent_id": "a1"}).json()["changes"]
        assert [(c["tick"], c["gained_resources"], c["lost_resources"]) for c in changes] == [
            (1, ["berry_1"], []),
            (2, ["berry_2"], []),
            (3, [], ["berry_1"]),
        ]
        observations = client.get("/debug/observations", params={"agent_id": "a1", "limit": 1}).json()
        assert observations["count"] == 1 and observations["observations"][0]["visible_resources"] == ["berry_2"]


def test_reset_forgets_everything(fault: FaultServer) -> None:
    with inspector(fault) as client:
        play(client)
        assert client.post("/debug/reset").json() == {"status": "reset"}
        assert client.get("/debug/traces").json() == {"traces": [], "count": 0}
        assert client.get("/debug/agents").json() == {"agents": []}


def test_a_failed_call_is_traced_as_a_fallback_with_its_reason(fault: FaultServer) -> None:
    fault.mode = "error_500"
    with inspector(fault) as client:
        assert client.post("/observe", json=observation("a1", 5, [])).json()["tool"] == "idle"
        [row] = client.get("/debug/summary").json()["agents"]
        decision = row["decisions"][0]
        assert decision["fallback_reason"] and "backend error" in decision["fallback_reason"]
        trace = client.get(f"/debug/trace/{decision['trace_id']}").json()
        assert trace["calls"][-1]["error"] and trace["calls"][-1]["response"] is None
        assert trace["timings_ms"]["model"] is not None and trace["timings_ms"]["total"] >= trace["timings_ms"]["model"]
        [capture] = client.get("/debug/prompts").json()["captures"]
        assert_shape(capture, SDK_RESPONSES["/debug/prompts"]["captures"][0])


def test_the_summary_and_a_trace_carry_what_the_page_shows(fault: FaultServer) -> None:
    with inspector(fault) as client:
        play(client)
        summary = client.get("/debug/summary", params={"per_agent": 2}).json()
        assert [row["agent_id"] for row in summary["agents"]] == ["a1", "a2"]
        newest = summary["agents"][0]["decisions"]
        assert [d["tick"] for d in newest] == [3, 2]
        assert newest[0]["tool"] == "move_to" and newest[0]["target"] == "[3.0, 0.0, 4.0]"
        assert set(newest[0]["timings_ms"]) == {"queue", "model", "total"}
        assert summary["store"]["traces"] == 6 and 0 < summary["store"]["bytes"] <= summary["store"]["max_bytes"]
        trace = client.get(f"/debug/trace/{newest[0]['trace_id']}").json()
        assert trace["observation"]["agent_id"] == "a1" and trace["prompt"]["prompt_tokens"] > 0
        assert client.get("/debug/trace/nope").status_code == 404


def test_the_page_and_its_assets_are_served_with_a_strict_policy(fault: FaultServer) -> None:
    with inspector(fault) as client:
        page = client.get("/debug")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == PAGE_POLICY and "script-src 'self'" in PAGE_POLICY
        assert "http://" not in page.text and "https://" not in page.text  # no external assets
        script = client.get("/debug/static/debug.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text  # game data as text only
        assert client.get("/debug/static/debug.css").status_code == 200
        assert client.get("/debug/static/..%2Fdebug.py").status_code == 404


def test_no_secret_is_shown(fault: FaultServer) -> None:
    fault.text = f"my key is {API_KEY}"  # a model (or game) echoing a secret must not make it visible
    fault.mode = "text"
    with inspector(fault) as client:
        client.post("/observe", json=observation("a1", 1, [API_KEY]))
        bodies = [
            client.get(path).text
            for path in ("/debug/traces", "/debug/prompts", "/debug/observations", "/debug/summary")
        ]
        [row] = client.get("/debug/summary").json()["agents"]
        bodies.append(client.get(f"/debug/trace/{row['decisions'][0]['trace_id']}").text)
        assert all(API_KEY not in body for body in bodies)
        assert "<redacted>" in bodies[0]


def test_a_hostile_name_is_stored_as_data(fault: FaultServer) -> None:
    with inspector(fault) as client:
        client.post("/observe", json=observation(HOSTILE, 1, ["<img src=x onerror=alert(1)>"]))
        assert client.get("/debug/agents").json() == {"agents": [HOSTILE]}
        assert client.get("/debug/prompts", params={"agent_id": HOSTILE}).json()["count"] == 1


@pytest.mark.parametrize(
    ("overrides", "on"),
    [
        (("agent.debug.enabled=auto", "agent.published_host=127.0.0.1"), True),
        (("agent.debug.enabled=auto", "agent.published_host=0.0.0.0"), False),
        (("agent.debug.enabled=auto", "agent.published_host=null", "agent.host=0.0.0.0"), False),
        (("agent.debug.enabled=auto", "agent.published_host=null", "agent.host=localhost"), True),
        (("agent.debug.enabled=false", "agent.published_host=127.0.0.1"), False),
        (("agent.debug.enabled=true", "agent.published_host=0.0.0.0"), True),
    ],
    ids=["auto-loopback", "auto-published-everywhere", "auto-bound-everywhere", "auto-localhost", "off", "forced-on"],
)
def test_on_by_default_only_where_published_on_loopback(
    fault: FaultServer, overrides: tuple[str, ...], on: bool
) -> None:
    with inspector(fault, *overrides) as client:
        assert inspector_enabled(inspector_settings(fault, *overrides).agent) is on
        for path in ("/debug", "/debug/traces", "/debug/prompts"):
            assert (client.get(path).status_code == 200) is on, path
        assert client.post("/observe", json=observation("a1", 1, [])).status_code == 200  # the game is unaffected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_sdk_query_parameters_are_accepted(fault: FaultServer) -> None:
    with inspector(fault) as client:
        play(client)
        values = {"limit": 5, "agent_id": "a1", "tick": 2, "tick_start": 1, "tick_end": 3, "tool": "move_to"}
        for path, names in SDK_QUERY.items():
            response = client.get(path, params={name: values[name] for name in names})
            assert response.status_code == 200, (path, response.text)


def test_the_readme_states_the_configured_bounds() -> None:
    debug = cached_settings().agent.debug
    readme = (REPO / "README.md").read_text()
    assert f"`agent.debug.ticks_per_agent` decisions of each agent ({debug.ticks_per_agent})" in readme
    assert f"({debug.max_bytes // 2**20} MiB of JSON, plus {ENTRY_OVERHEAD // 1024} KiB per trace" in readme
    assert debug.enabled == "auto"


def test_with_agent_auth_on_the_inspector_needs_the_token_and_never_shows_it(fault: FaultServer, tmp_path) -> None:
    token = "agent-bearer-token-0123456789"
    (tmp_path / "token").write_text(token)
    with inspector(fault, f"agent.api_key_file={tmp_path / 'token'}") as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/observe", json=observation("a1", 1, [token]), headers=auth).status_code == 200
        for path in ("/debug", "/debug/traces", "/debug/prompts", "/debug/summary"):
            assert client.get(path).status_code == 401, path
        bodies = [client.get(path, headers=auth) for path in ("/debug/traces", "/debug/prompts", "/debug/observations")]
        assert all(body.status_code == 200 and token not in body.text for body in bodies)
