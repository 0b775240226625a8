"""The decision inspector on the running CPU stack: a short replay, then Agent Arena's /debug/* and the page.

The stack publishes the agent on 127.0.0.1 (compose passes ARENA_BIND_ADDRESS in), so the
inspector is on by default there. The page is read in headless Chromium; its screenshot is
saved under tests/output/ (the path is printed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import headless_chromium, open_decision, read_inspector, save_screenshot
from tests.support.decisions import TOOLS
from tests.support.observations import OBSERVATION
from tests.support.sdk_debug import SDK_RESPONSES, assert_shape
from tests.support.stack import Stack

HOSTILE = "<script>window.__pwned=1</script>"
AGENTS = ["inspector_a", "inspector_b", HOSTILE]
TICKS = (101, 102, 103)


@pytest.fixture(scope="module")
def replayed(stack: Stack) -> Iterator[httpx.Client]:
    """Three ticks of three agents (one with a hostile name) through ``/tick``, as the game sends them."""
    with httpx.Client(base_url=stack.agent_url, timeout=180) as client:
        for tick in TICKS:
            body = {
                "tick": tick,
                "agents": [
                    {"agent_id": agent, "observations": {**OBSERVATION, "agent_id": agent, "tick": tick}}
                    for agent in AGENTS
                ],
            }
            response = client.post("/tick", json=body)
            assert response.status_code == 200, response.text
            for action in response.json()["actions"]:
                assert action["action"]["tool"] in TOOLS, action
        yield client


def test_prompts_of_an_agent_after_a_replay(replayed: httpx.Client) -> None:
    answer = replayed.get("/debug/prompts", params={"agent_id": "inspector_a"}).json()
    assert_shape(answer, SDK_RESPONSES["/debug/prompts"])
    assert [c["tick"] for c in answer["captures"]] == list(TICKS)
    stages = {entry["stage"]: entry["data"] for entry in answer["captures"][-1]["entries"]}
    assert "inspector_a" in stages["prompt_building"]["final_prompt"]
    assert stages["prompt_building"]["prompt_tokens"] > 0  # vLLM's usage, not an estimate
    assert stages["llm_request"]["tools"] and stages["llm_response"]["raw_text"] is not None
    if stages["decision"]["source"] == "native":  # the random-weight model's call was executable
        assert stages["llm_response"]["metadata"]["tool_call"]["name"] == stages["decision"]["tool"]
    else:  # the policy's fallback: the inspector says why
        assert stages["decision"]["fallback_reason"], stages["decision"]
    sources = [c["entries"][-1]["data"]["source"] for c in replayed.get("/debug/prompts").json()["captures"]]
    assert "native" in sources, sources  # the engine made decisions, and they were traced


def test_every_debug_endpoint_has_the_sdks_shape_and_no_secret(replayed: httpx.Client, stack: Stack) -> None:
    for path, sdk in SDK_RESPONSES.items():
        if path.endswith("reset"):
            continue  # other tests of this module read the replay
        response = replayed.get(
            path, params={"limit": 1000} if path in ("/debug/traces", "/debug/observations") else None
        )
        assert response.status_code == 200, (path, response.text)
        assert_shape(response.json(), sdk, path)
        assert stack.api_key not in response.text and stack.hf_token not in response.text, path


def test_the_page_shows_the_agents_and_their_decisions_in_chromium(
    replayed: httpx.Client,
    stack: Stack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stats = replayed.get("/debug/stats").json()
    with headless_chromium(tmp_path / "profile") as browser:
        chips = read_inspector(browser, stack.agent_url, AGENTS)
        for agent in AGENTS:
            assert len(chips[agent]) == len(TICKS) and all(chips[agent]), (agent, chips[agent])
        shown = open_decision(browser, HOSTILE)
        assert shown["title"] == f"{HOSTILE} · tick {TICKS[-1]}"  # the name as text, not as a script
        assert f"You are {json.dumps(HOSTILE)}" in shown["prompt"] and shown["raw"]  # the prompt quotes names
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
        shot = save_screenshot(browser, "debug-page-cpu-stack.png")
    with capsys.disabled():
        print(f"\n[artifact] /debug screenshot: {shot}\n[inspector] store after the replay: {stats}")
    assert 0 < stats["bytes"] <= stats["max_bytes"]
