"""The hostile corpus (tests/support/hostile.py) against the real agent service with the default settings.

Each case gets its 4xx naming the field (and never reaches the model), or a decision the game
can carry out whose model request, as the FaultServer received it, is within
``agent.prompt_budget_bytes``. After each case the service still decides a plain observation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from arena_vllm.agent.actions import game_problem
from arena_vllm.agent.bounds import InputLimits, limits_in_force, printable
from arena_vllm.agent.schemas import Observation
from arena_vllm.tool_shapes import normalize_tools
from tests.support.fault_server import FaultServer
from tests.support.hostile import Hostile, hostile_corpus, observe
from tests.support.service import agent_client, cached_settings

pytestmark = pytest.mark.usefixtures("clean_environment")

MOVE = {"target_position": [1.0, 2.0, 3.0]}
CORPUS = hostile_corpus()


def sent_bytes(request: dict) -> int:
    """system + tools + user prompt of a chat request as the FaultServer got it, counted as the budget counts them."""
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "parameters": t["function"]["parameters"],
        }
        for t in request["tools"]
    ]
    prompts = [message["content"] for message in request["messages"]]
    return sum(len(text.encode()) for text in prompts) + len(json.dumps(normalize_tools(tools)).encode())


@pytest.fixture(scope="module")
def fault() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", tool_args=MOVE) as server:
        yield server


@pytest.fixture(scope="module")
def agent(fault: FaultServer) -> Iterator[httpx.Client]:
    with agent_client(fault) as client:  # the default agent.* settings: the corpus is sized against them
        yield client


def test_the_corpus_covers_issue_10s_list() -> None:
    ids = " ".join(case.id for case in CORPUS)
    for part in ("1e308", "10e6", "newline", "U+2028", "U+2029", "U+0085", "injection", "nesting"):
        assert part in ids
    assert len({case.id for case in CORPUS}) == len(CORPUS)
    assert sum(case.status == 200 for case in CORPUS) >= 8 and sum(case.status >= 400 for case in CORPUS) >= 25


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_a_hostile_request_gets_a_4xx_or_a_decision_within_the_prompt_budget(
    agent: httpx.Client, fault: FaultServer, case: Hostile
) -> None:
    for event in case.experiences:
        assert agent.post("/experience", json=event).status_code == 200
    fault.requests.clear()
    response = agent.post(case.path, content=case.body, headers={"content-type": "application/json"})

    assert response.status_code == case.status, response.text[:2000]
    assert case.says in response.text
    if case.status == 422:
        assert list(case.loc) in [error["loc"] for error in response.json()["detail"]], response.text[:2000]
    if case.status != 200:
        assert fault.requests == [], "a refused request reached the model"
    else:
        budget = cached_settings().agent.prompt_budget_bytes
        assert fault.requests, "no model call"
        for request in fault.requests:
            assert sent_bytes(request) <= budget, f"{sent_bytes(request)} bytes > agent.prompt_budget_bytes {budget}"
            assert request["messages"][1]["content"].startswith("Tick ")  # the header is never dropped
        body = json.loads(case.body)
        answers = response.json()["actions"] if case.path == "/tick" else [response.json()]
        observations = body.get("perceptions") or [body]
        for answer, sent in zip(answers, observations):
            decision = answer.get("action", answer)
            assert decision["source"] == "native", decision
            with limits_in_force(InputLimits.from_settings(cached_settings())):
                obs = Observation.model_validate({"tick": body.get("tick", 0), **sent})
            assert game_problem(decision["tool"], decision["params"], obs, cached_settings()) is None

    plain = agent.post("/observe", json=observe())
    assert plain.status_code == 200 and plain.json()["source"] == "native"


def test_the_widest_case_needed_the_budget() -> None:
    """The budget is exercised: without it, the largest accepted case would be over it (so the test above can fail)."""
    from arena_vllm.agent.policy import plan_call

    settings = cached_settings()
    unbounded = cached_settings("agent.prompt_budget_bytes=100000000")
    widest = next(case for case in CORPUS if case.id == "max-lists-wide-names")
    with limits_in_force(InputLimits.from_settings(settings)):
        obs = Observation.model_validate(json.loads(widest.body))
    assert plan_call(obs, unbounded).size_bytes > settings.agent.prompt_budget_bytes
    within = plan_call(obs, settings)
    assert within.size_bytes <= settings.agent.prompt_budget_bytes
    assert within.prompt.startswith("Tick ")


def test_printable_refuses_exactly_the_control_format_and_separator_categories() -> None:
    for char in (
        "\x00",
        "\n",
        "\t",
        "\x7f",
        "\x85",
        "\x9f",
        "\u200b",
        "\u200d",
        "\u202e",
        "\ufeff",
        "\u2028",
        "\u2029",
    ):
        with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
            printable(f"a{char}b")
    for text in ("Apple2", "forager 01", "caf\u00e9", "\u00a0nbsp", "\U0001f34e", "\u4e2d\u6587", 'q"uote'):
        assert printable(text) == text


def test_bounds_apply_only_where_put_in_force() -> None:
    """A script validating a model gets finiteness only; the service's settings are per app."""
    far = {"agent_id": "a", "position": [1e308, 0, 0]}
    assert Observation.model_validate(far).position[0] == 1e308
    with limits_in_force(InputLimits(max_coordinate=10, max_distance=10, max_number=10, max_count=10)):
        with pytest.raises(ValueError, match=r"1e\+308 is beyond \+-10 \(agent.input.max_coordinate\)"):
            Observation.model_validate(far)
        with pytest.raises(ValueError, match=r"11 is over 10 \(agent.input.max_count\)"):
            Observation.model_validate({"agent_id": "a", "position": [0, 0, 0], "tick": 11})


def test_over_budget_lists_shrink_before_hazards_and_resources_are_dropped() -> None:
    from arena_vllm.agent.policy import plan_call

    settings = cached_settings()
    case = next(case for case in CORPUS if case.id == "max-lists-ascii-names")
    with limits_in_force(InputLimits.from_settings(settings)):
        obs = Observation.model_validate(json.loads(case.body))
    plan = plan_call(obs, settings)
    kinds = [line.split(":")[0] for line in plan.prompt.splitlines()]
    assert "Hazards" in kinds and "Resources" in kinds, plan.prompt
    hazards = next(line for line in plan.prompt.splitlines() if line.startswith("Hazards"))
    assert 0 < hazards.count(" away") < settings.agent.max_entities_in_prompt  # fewer than 5 listed, the rest counted
    assert "more not listed" in hazards
    [collect] = [t for t in plan.tools if t["name"] == "collect"]
    assert len(collect["parameters"]["properties"]["target_name"]["enum"]) == hazards.count(" away")  # same cap
