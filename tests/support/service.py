"""The agent service on loopback for unit tests: uvicorn in a thread, a client of it, reading its metrics.

Example::

    with FaultServer(model="tiny", tool_args=MOVE) as fault, agent_client(fault) as client:
        assert client.post("/observe", json={"agent_id": "a", "position": [0, 0, 0]}).status_code == 200
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from arena_vllm.agent.app import create_app
from arena_vllm.config import Settings, load_settings
from tests.support.fault_server import FaultServer

MOVE = {"target_position": [3.0, 0.0, 4.0]}
#: The stand-in answers fixed coordinates (``MOVE``), so the service it backs takes coordinates from the model;
#: named move targets (the shipped scenes' default) are tested against observations in test_move_targets.py.
COORDINATES = "scene.move_targets=coordinates"


@contextmanager
def serving(app: object) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port in a thread; yields its URL, runs its lifespan."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "agent service did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@functools.lru_cache
def cached_settings(*overrides: str) -> Settings:
    """Settings are immutable and Hydra takes ~0.5 s to compose: compose each distinct set once."""
    return load_settings(overrides)


@contextmanager
def agent_client(fault: FaultServer, *overrides: str) -> Iterator[httpx.Client]:
    """An HTTP client of a fresh agent service whose backend is ``fault``; its requests have the native
    tool shape (``format=openai``) unless ``overrides`` say otherwise, since most tests read what was sent."""
    settings = cached_settings(
        f"backend.api_base={fault.api_base}",
        "backend.model=tiny",
        "backend.max_retries=0",
        "backend.timeout_s=10",
        "agent.tick_deadline_s=5",
        COORDINATES,
        "backend.function_calling.format=openai",
        *overrides,
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def tick_body(agent_ids: list[str], tick: int = 7) -> dict:
    return {"tick": tick, "agents": [{"agent_id": i, "observations": {"position": [1.0, 0.0, 1.0]}} for i in agent_ids]}


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
