"""The /debug page in headless Chromium against an agent deciding through the FaultServer (fast; no Docker).

The stack test (tests/stack/test_debug_page.py) does the same against the real CPU stack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import headless_chromium, open_decision, read_inspector, save_screenshot
from tests.support.fault_server import FaultServer
from tests.support.inspector import HOSTILE, inspector, observation
from tests.support.service import MOVE

HOSTILE_RESOURCE = '"><img src=x onerror="window.__pwned=2">'


def test_agents_and_their_decisions_show_and_hostile_text_stays_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer(model="tiny", tool_args=MOVE) as fault, inspector(fault) as client:
        for tick in (1, 2):
            body = {
                "tick": tick,
                "agents": [
                    {"agent_id": agent, "observations": observation(agent, tick, ["berry_1", HOSTILE_RESOURCE])}
                    for agent in ("forager_1", HOSTILE)
                ],
            }
            assert client.post("/tick", json=body).status_code == 200
        fault.mode = "error_500"
        assert client.post("/observe", json=observation("forager_2", 3, [])).json()["tool"] == "idle"

        with headless_chromium(tmp_path / "profile") as browser:
            chips = read_inspector(browser, str(client.base_url), ["forager_1", "forager_2", HOSTILE])
            assert chips["forager_1"] == ["move_to", "move_to"] and chips[HOSTILE] == ["move_to", "move_to"]
            assert chips["forager_2"] == ["idle"]
            fallback = browser.find_elements(By.CSS_SELECTOR, "button.chip.fallback")
            assert [c.get_attribute("data-agent-id") for c in fallback] == ["forager_2"]  # highlighted
            shown = open_decision(browser, HOSTILE)
            assert shown["title"] == f"{HOSTILE} · tick 2"
            # as text, verbatim (the prompt quotes names as JSON strings)
            assert HOSTILE in shown["prompt"] and "<img src=x onerror=" in shown["prompt"]
            assert "move_to" in shown["raw"]
            assert browser.execute_script("return typeof window.__pwned") == "undefined"
            assert not browser.find_elements(By.CSS_SELECTOR, "#rows img, #detail img, #rows script, #detail script")
            shot = save_screenshot(browser, "debug-page-fault-server.png")
            with capsys.disabled():
                print(f"\n[artifact] /debug screenshot: {shot}")
