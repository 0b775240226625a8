"""The fast tests' agent service: a real app over HTTP whose vLLM is a FaultServer stand-in.

A test module that needs another stand-in (one that hangs) or a module-wide agent defines its
own ``fault`` or ``agent`` fixture, which takes precedence over these.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.fault_server import FaultServer
from tests.support.service import MOVE, agent_client


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    """A stand-in vLLM that answers every call with ``move_to`` to ``MOVE``."""
    with FaultServer(model="tiny", tool_args=MOVE) as server:
        yield server


@pytest.fixture
def agent(fault: FaultServer) -> Iterator[httpx.Client]:
    """A client of a fresh agent service backed by ``fault``."""
    with agent_client(fault) as client:
        yield client
