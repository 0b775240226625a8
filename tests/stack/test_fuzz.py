"""Schema-driven fuzzing of the agent's HTTP API on the running CPU stack (issue 10): real uvicorn, real engine.

tests/unit/test_agent_requests.py fuzzes the app in-process; this sends the generated requests
over the network to the container, where the body limits, the in-flight cap, the read-only
root and the real backend all take part. Bounded: a fixed number of examples per operation
and a deadline per request. Passes when no request got a 5xx and the service is still
healthy and ready after them.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.support.stack import Stack

EXAMPLES_PER_OPERATION = 25
REQUEST_TIMEOUT_S = 120  # a valid /tick of many agents is decided by the CPU engine


@pytest.fixture(scope="module")
def stack_schema(stack: Stack) -> object:
    return schemathesis.openapi.from_url(f"{stack.agent_url}/openapi.json")


fuzzed = schemathesis.pytest.from_fixture("stack_schema")


@fuzzed.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error_from_the_stack(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error], timeout=REQUEST_TIMEOUT_S)


def test_the_stack_is_healthy_after_the_fuzzing(stack: Stack) -> None:
    """Runs after the fuzz test (file order): the service survived it and still decides."""
    assert httpx.get(f"{stack.agent_url}/health", timeout=30).json() == {"status": "ok"}
    assert httpx.get(f"{stack.agent_url}/ready", timeout=30).status_code == 200
    container = stack.container("agent")
    container.reload()
    assert container.attrs["RestartCount"] == 0 and container.attrs["State"]["OOMKilled"] is False
