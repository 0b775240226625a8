"""An agent service with the /debug inspector on, deciding through the FaultServer, for the unit tests.

Example::

    with FaultServer(model="tiny", tool_args=MOVE) as fault, inspector(fault) as client:
        client.post("/observe", json=observation("a1", 1, ["berry_1"]))
        print(client.get("/debug/prompts", params={"agent_id": "a1"}).json())
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from arena_vllm.agent.app import create_app
from arena_vllm.config import Settings
from tests.support.fault_server import FaultServer
from tests.support.observations import OBSERVATION
from tests.support.service import COORDINATES, cached_settings, serving

#: The vLLM API key the service is given; no /debug answer may show it.
API_KEY = "sk-inspector-test-key-0123456789"
#: An agent id that would run as a script if the page wrote it as HTML.
HOSTILE = "<script>window.__pwned=1</script>"


def inspector_settings(fault: FaultServer, *overrides: str) -> Settings:
    """Settings of a service deciding through ``fault``, the inspector on unless ``overrides`` say otherwise."""
    return cached_settings(
        f"backend.api_base={fault.api_base}",
        "backend.model=tiny",
        "backend.max_retries=0",
        "backend.timeout_s=10",
        f"backend.api_key={API_KEY}",
        "agent.tick_deadline_s=5",
        "agent.debug.enabled=true",
        COORDINATES,
        *overrides,
    )


@contextmanager
def inspector(fault: FaultServer, *overrides: str) -> Iterator[httpx.Client]:
    """An HTTP client of a fresh agent service built from :func:`inspector_settings`."""
    with (
        serving(create_app(inspector_settings(fault, *overrides))) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


def observation(agent_id: str, tick: int, resources: list[str]) -> dict:
    """The sample observation for ``agent_id`` at ``tick``, seeing these resources (by name)."""
    return {
        **OBSERVATION,
        "agent_id": agent_id,
        "tick": tick,
        "nearby_resources": [{"name": name, "type": "berry", "position": [3.0, 0.0, 4.0]} for name in resources],
    }
