"""A few cases of the hostile corpus (tests/support/hostile.py) against the real CPU stack.

The whole corpus runs in-process in tests/unit/test_hostile.py; here the agent container
(read-only root, its own limits) and the real vLLM engine see a sample of each kind: refused
numbers and labels (422 naming the field), a body of 10^6 inventory entries (413), and
injection text and every list at its maximum (a decision the game can carry out). Afterwards
the agent still serves and was not restarted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from arena_vllm.agent.actions import game_problem
from arena_vllm.agent.bounds import InputLimits, limits_in_force
from arena_vllm.agent.schemas import Observation
from arena_vllm.config import load_settings
from tests.support.hostile import hostile_corpus, observe
from tests.support.stack import Stack

SETTINGS = load_settings()  # the agent container runs the same configs/
SAMPLE = (
    "float-1e308-position",
    "int-tick-10e18",
    "newline-in-resource-name",
    "line-separator-U+2028-in-agent-id",
    "c1-next-line-U+0085-in-objective",
    "inventory-dict-10e6-entries",
    "nesting-100k-in-metadata",
    "injection-in-names",
    "injection-in-tick-perceptions",
    "max-lists-ascii-names",
)


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.agent_url, timeout=300) as client:
        yield client


def test_hostile_requests_get_a_4xx_or_a_game_executable_decision_from_the_stack(client: httpx.Client) -> None:
    cases = {case.id: case for case in hostile_corpus()}
    sources: Counter[str] = Counter()
    for name in SAMPLE:
        case = cases[name]
        response = client.post(case.path, content=case.body, headers={"content-type": "application/json"})
        assert response.status_code == case.status, f"{name}: {response.text[:500]}"
        assert case.says in response.text, name
        if case.status == 422:
            assert list(case.loc) in [error["loc"] for error in response.json()["detail"]], name
        if case.status != 200:
            continue
        body = json.loads(case.body)
        answers = response.json()["actions"] if case.path == "/tick" else [response.json()]
        for answer, sent in zip(answers, body.get("perceptions") or [body]):
            sources[answer["source"]] += 1
            with limits_in_force(InputLimits.from_settings(SETTINGS)):
                obs = Observation.model_validate({"tick": body.get("tick", 0), **sent})
            assert game_problem(answer["tool"], answer["params"], obs, SETTINGS) is None, (name, answer)
            assert "\n" not in answer["reasoning"] and "http" not in answer["reasoning"], answer
    print(f"hostile sample: {len(SAMPLE)} cases, decisions by source {dict(sources)}")
    assert sources, "no case was decided"

    after = client.post("/observe", json=observe())
    assert after.status_code == 200 and after.json()["source"] == "native", after.text
    assert client.get("/ready").status_code == 200
