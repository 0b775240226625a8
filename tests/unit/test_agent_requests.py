"""Request handling beyond the happy path: what the game may add, the OpenAPI document, and fuzzing from it.

The corpus of malformed requests (each a 4xx naming the field) is in test_bad_input.py. Here the
app is driven in-process through httpx's ASGI transport; its backend points at a port nobody
listens on, so any decision that does get made is ``idle``.
"""

from __future__ import annotations

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
        yield load_settings(
            [
                f"backend.api_base=http://127.0.0.1:{port}/v1",
                "backend.model=tiny",
                "backend.max_retries=0",
                "agent.max_agents_per_tick=4",
                "agent.max_body_bytes=65536",
            ]
        )


@pytest.fixture
def app(settings_: Settings) -> FastAPI:
    return create_app(settings_)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://agent") as client:
        yield client


async def test_the_game_may_send_more_than_we_read(client: httpx.AsyncClient) -> None:
    """New top-level keys are ignored, entities keep extra keys, distance and observation ids are optional."""
    observation = {
        **VALID,
        "future_field": {"x": 1},
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
