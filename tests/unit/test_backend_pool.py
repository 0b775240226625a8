"""ReplicaPool against real loopback servers (FaultServer): spreading, failover, retry later, /ready.

A dead replica is a port where nothing listens (connection refused) or a server answering 5xx;
no mocks of the HTTP layer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from arena_vllm.agent.app import create_app
from arena_vllm.backends import BackendConnectionError, BackendTimeoutError, LLMBackend, VLLMBackend, VLLMBackendConfig
from arena_vllm.backends.pool import ReplicaPool, backend_from_settings
from arena_vllm.config import ConfigError, load_settings
from tests.support.fault_server import FaultServer
from tests.support.service import COORDINATES, serving, tick_body

TOOLS = load_settings().tools.tools
MOVE = {"target_position": [1.0, 2.0, 3.0]}


class FakeClock:
    """Time that moves only when the test says so (the retry window is the pool's own clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dead_api_base() -> str:
    """A loopback address where nothing listens: every call is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def backend(api_base: str, **options: Any) -> VLLMBackend:
    return VLLMBackend(
        VLLMBackendConfig(**{"model_path": "tiny", "api_base": api_base, "timeout_s": 5, "max_retries": 0, **options})
    )


@pytest.fixture
def servers() -> Iterator[list[FaultServer]]:
    with FaultServer(model="tiny", tool_args=MOVE) as first, FaultServer(model="tiny", tool_args=MOVE) as second:
        yield [first, second]


def test_pool_satisfies_the_protocol(servers: list[FaultServer]) -> None:
    with ReplicaPool([backend(s.api_base) for s in servers]) as pool:
        assert isinstance(pool, LLMBackend)


async def test_calls_are_spread_over_replicas_by_in_flight(servers: list[FaultServer]) -> None:
    for server in servers:
        server.mode, server.hang_s = "hang", 0.3  # each call stays in flight a while, then answers in text
    async with ReplicaPool([backend(s.api_base) for s in servers]) as pool:
        results = await asyncio.gather(*(pool.agenerate(f"hi {i}", max_tokens=4) for i in range(8)))
    assert [len(s.requests) for s in servers] == [4, 4]
    assert {r.metadata["replica"] for r in results} == {s.api_base for s in servers}


def test_sequential_calls_alternate(servers: list[FaultServer]) -> None:
    with ReplicaPool([backend(s.api_base) for s in servers]) as pool:
        for _ in range(6):
            assert pool.generate_with_tools("go", TOOLS).metadata["tool_call"]["name"]
    assert [len(s.requests) for s in servers] == [3, 3]


@pytest.mark.parametrize("fault", ["refused", "error_500"])
async def test_a_dead_replica_is_skipped_and_the_call_is_answered_by_another(
    servers: list[FaultServer], fault: str
) -> None:
    bad = dead_api_base() if fault == "refused" else servers[1].api_base
    if fault == "error_500":
        servers[1].mode = "error_500"
    clock = FakeClock()
    async with ReplicaPool([backend(bad), backend(servers[0].api_base)], down_for_s=5, clock=clock) as pool:
        results = [await pool.agenerate_with_tools("go", TOOLS) for _ in range(4)]
        assert all(r.metadata["tool_call"] for r in results)
        assert all(r.metadata["replica"] == servers[0].api_base for r in results)
        bad_calls = len(servers[1].requests)
        assert bad_calls <= 1  # tried once, then skipped while down
        clock.now += 6  # past down_for_s: the dead one is in the rotation again (and fails over again)
        again = [await pool.agenerate_with_tools("go", TOOLS) for _ in range(2)]
        assert all(r.metadata["replica"] == servers[0].api_base for r in again)
        if fault == "error_500":
            assert len(servers[1].requests) == bad_calls + 1


async def test_a_revived_replica_rejoins_after_the_retry_window(servers: list[FaultServer]) -> None:
    clock = FakeClock()
    servers[1].mode = "error_500"
    async with ReplicaPool([backend(s.api_base) for s in servers], down_for_s=5, clock=clock) as pool:
        for _ in range(3):
            await pool.agenerate_with_tools("go", TOOLS)
        servers[1].mode = "tool_call"
        before = len(servers[1].requests)
        for _ in range(2):
            await pool.agenerate_with_tools("go", TOOLS)
        assert len(servers[1].requests) == before  # still in its retry window
        clock.now += 6
        results = [await pool.agenerate_with_tools("go", TOOLS) for _ in range(4)]
    assert {r.metadata["replica"] for r in results} == {s.api_base for s in servers}


def test_when_every_replica_is_dead_the_error_is_raised() -> None:
    with ReplicaPool([backend(dead_api_base()), backend(dead_api_base())]) as pool:
        with pytest.raises(BackendConnectionError):
            pool.generate("hi")


async def test_a_timeout_is_not_retried_on_another_replica(servers: list[FaultServer]) -> None:
    servers[0].mode, servers[0].hang_s = "hang", 5
    async with ReplicaPool([backend(s.api_base, timeout_s=0.5) for s in servers]) as pool:
        with pytest.raises(BackendTimeoutError):
            await pool.agenerate("hi")  # the first call goes to replica 0 (round robin starts there)
    assert len(servers[1].requests) == 0


async def test_status_lists_every_replica_and_is_available_with_one_up(servers: list[FaultServer]) -> None:
    dead = dead_api_base()
    async with ReplicaPool([backend(servers[0].api_base), backend(dead)]) as pool:
        status = await pool.astatus()
    assert status.available and status.models == ["tiny"]
    assert [(row["api_base"], row["up"]) for row in status.replicas] == [(servers[0].api_base, True), (dead, False)]
    assert dead.removesuffix("/v1") in status.replicas[1]["reason"]


def test_api_bases_from_settings_a_list_or_a_comma_separated_string(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = ["http://vllm:8000/v1", "http://vllm-1:8000/v1"]
    assert load_settings([f"backend.api_bases=[{','.join(urls)}]"]).backend.api_bases == urls
    monkeypatch.setenv("VLLM_API_BASES", " http://vllm:8000/v1/, http://vllm-1:8000/v1")
    settings = load_settings()
    assert settings.backend.api_bases == urls
    pool = backend_from_settings(settings.backend)
    assert isinstance(pool, ReplicaPool) and pool.api_bases == urls
    monkeypatch.setenv("VLLM_API_BASES", "")
    assert isinstance(backend_from_settings(load_settings().backend), VLLMBackend)


def test_a_bad_replica_url_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"backend.api_bases.*http://"):
        load_settings(["backend.api_bases=[vllm:8000]"])


def test_agent_ready_says_which_replicas_are_up_and_ticks_survive_a_dead_one(servers: list[FaultServer]) -> None:
    dead = dead_api_base()
    settings = load_settings(
        [
            f"backend.api_bases=[{servers[0].api_base},{dead}]",
            "backend.model=tiny",
            "backend.max_retries=0",
            "agent.tick_deadline_s=5",
            COORDINATES,
        ]
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert [row["up"] for row in ready.json()["replicas"]] == [True, False]
        actions = client.post("/tick", json=tick_body([f"a{i}" for i in range(6)])).json()["actions"]
        assert [a["action"]["tool"] for a in actions] == ["move_to"] * 6
        servers[0].mode = "health_down"
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503 and not_ready.json()["replicas"][0]["up"] is False
