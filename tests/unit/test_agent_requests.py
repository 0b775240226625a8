"""Bad requests get 4xx naming the field, never a 5xx, and never reach the model.

Pure request handling, so the app is driven in-process through httpx's ASGI transport; its
backend points at a port nobody listens on, so any decision that does get made is ``idle``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from arena_vllm.agent.app import create_app
from arena_vllm.config import Settings, load_settings

VALID = {"agent_id": "a1", "tick": 1, "position": [0.0, 0.0, 0.0]}


@pytest.fixture(scope="module")
def settings_() -> Iterator[Settings]:
    """Composed once (Hydra takes ~0.5 s); the backend points at a port that refuses connections."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening, held for the module: nothing else gets it
        port = closed.getsockname()[1]
        yield load_settings([
            f"backend.api_base=http://127.0.0.1:{port}/v1", "backend.model=tiny", "backend.max_retries=0",
            "agent.max_agents_per_tick=4", "agent.max_body_bytes=65536",
        ])


@pytest.fixture
def app(settings_: Settings) -> FastAPI:
    return create_app(settings_)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://agent") as client:
        yield client


async def post_raw(client: httpx.AsyncClient, path: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": content_type})


def locs(response: httpx.Response) -> list[list[object]]:
    return [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"agent_id": None}, ["body", "agent_id"], "Field required"),
        ({"position": None}, ["body", "position"], "Field required"),
        ({"agent_id": 5}, ["body", "agent_id"], "valid string"),
        ({"agent_id": ""}, ["body", "agent_id"], "at least 1 character"),
        ({"agent_id": "a" * 129}, ["body", "agent_id"], "at most 128 characters"),
        ({"position": "north"}, ["body", "position"], "valid list"),
        ({"position": [1, 2]}, ["body", "position"], "at least 3 items"),
        ({"position": [1, "x", 2]}, ["body", "position", 1], "valid number"),
        ({"health": "full"}, ["body", "health"], "valid number"),
        ({"tick": -1}, ["body", "tick"], "greater than or equal to 0"),
        ({"tick": 1.5}, ["body", "tick"], "valid integer"),
        ({"nearby_resources": [{"position": [1, 2, 3]}]}, ["body", "nearby_resources", 0, "name"], "Field required"),
        ({"nearby_hazards": [{"name": "f", "position": [1, 2, 3], "distance": -1}]},
         ["body", "nearby_hazards", 0, "distance"], "greater than or equal to 0"),
        ({"nearby_resources": [{"name": f"r{n}", "position": [0, 0, 0]} for n in range(513)]},
         ["body", "nearby_resources"], "at most 512 items"),
    ],
)
async def test_observe_rejects_bad_fields_with_422_naming_them(
    client: httpx.AsyncClient, change: dict, loc: list, message: str
) -> None:
    body = {key: value for key, value in {**VALID, **change}.items() if value is not None}
    response = await client.post("/observe", json=body)
    assert response.status_code == 422
    [error] = [error for error in response.json()["detail"] if error["loc"] == loc]
    assert message in error["msg"]
    assert "input" not in error  # never echoed: it may be NaN or a whole megabyte


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_are_422_not_500(client: httpx.AsyncClient, number: str) -> None:
    body = f'{{"agent_id": "a1", "position": [0, {number}, 0], "health": {number}}}'.encode()
    response = await post_raw(client, "/observe", body)
    assert response.status_code == 422
    assert locs(response) == [["body", "position", 1], ["body", "health"]]
    assert all(error["type"] == "finite_number" for error in response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"agent_id": "a1", "position": [0, 0', "application/json", 422),  # truncated JSON
        (b"agent_id=a1", "application/json", 422),  # not JSON at all
        ("{\"agent_id\": \"caf\xe9\"}".encode("latin-1"), "application/json", 400),  # not UTF-8
        (b"", "application/json", 422),  # no body
        (b"[1, 2, 3]", "application/json", 422),  # JSON, but not an object
        (json.dumps(VALID).encode(), "text/plain", 422),  # not declared as JSON
        (b"[" * 30_000 + b"]" * 30_000, "application/json", 400),  # nested deeper than the parser recurses
    ],
    ids=["truncated", "not-json", "not-utf8", "empty", "array", "text-plain", "too-deep"],
)
async def test_unparseable_bodies_are_4xx(client: httpx.AsyncClient, body: bytes, content_type: str, status: int) -> None:
    response = await post_raw(client, "/observe", body, content_type)
    assert response.status_code == status


async def test_tick_errors_name_the_agent_and_field(client: httpx.AsyncClient) -> None:
    body = {"tick": 3, "agents": [{"agent_id": "a", "observations": {"position": [0, 0, 0]}},
                                   {"agent_id": "b", "observations": {"tick": 3}}]}
    response = await client.post("/tick", json=body)
    assert response.status_code == 422
    assert locs(response) == [["body", "agents", 1, "observations", "position"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"tick": 1}, ["body", "agents"]),
        ({"agents": []}, ["body", "tick"]),
        ({"tick": 1, "agents": {"a": {}}}, ["body", "agents"]),
        ({"tick": 1, "agents": [{"observations": {"position": [0, 0, 0]}}]}, ["body", "agents", 0, "agent_id"]),
    ],
)
async def test_tick_rejects_bad_envelopes(client: httpx.AsyncClient, body: dict, loc: list) -> None:
    response = await client.post("/tick", json=body)
    assert response.status_code == 422
    assert loc in locs(response)


async def test_too_many_agents_is_413(client: httpx.AsyncClient) -> None:
    agents = [{"agent_id": f"a{n}", "observations": {"position": [0, 0, 0]}} for n in range(5)]
    response = await client.post("/tick", json={"tick": 1, "agents": agents})
    assert response.status_code == 413
    assert "at most 4 (agent.max_agents_per_tick)" in response.json()["detail"][0]["msg"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    body = {**VALID, "custom": {"pad": "x" * 70_000}}
    assert (await client.post("/observe", json=body)).status_code == 413


async def test_the_game_may_send_more_than_we_read(client: httpx.AsyncClient) -> None:
    """New top-level keys are ignored, entities keep extra keys, distance and observation ids are optional."""
    observation = {
        **VALID, "future_field": {"x": 1},
        "nearby_resources": [{"name": "berry_1", "type": "berry", "position": [1, 0, 1], "value": 5}],
        "inventory": {"wood": 2},  # the older dict form
    }
    assert (await client.post("/observe", json=observation)).status_code == 200
    tick = {"tick": 9, "agents": [{"agent_id": "a", "observations": {"position": [0, 0, 0]}}]}
    response = await client.post("/tick", json=tick)
    assert response.status_code == 200
    assert response.json()["actions"][0]["agent_id"] == "a"


async def test_openapi_documents_the_protocol(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/observe", "/tick", "/health", "/ready"} <= set(spec["paths"])
    observation = spec["components"]["schemas"]["Observation"]
    assert {"agent_id", "position"} <= set(observation["required"])


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def api_schema(app: FastAPI) -> object:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.slow
@fuzzed.include(method="POST").parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    """Schema-driven fuzzing (valid and invalid bodies): the service answers every one without a 5xx."""
    case.call_and_validate(checks=[not_a_server_error])
