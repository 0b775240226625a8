"""Failures of the server become typed errors, fast, carrying the api_base and the cause; status() explains them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from arena_vllm.backends import (
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    ModelNotServedError,
    RequestRejectedError,
    ServerError,
    VLLMBackend,
    VLLMBackendConfig,
)
from tests.support.fault_server import FaultServer


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(model="tiny", hang_s=30) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_server(server: FaultServer) -> None:
    server.mode = "text"
    server.requests.clear()


def closed_port_base() -> str:
    """An api_base on a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def make_backend(api_base: str, **options: Any) -> VLLMBackend:
    return VLLMBackend(
        VLLMBackendConfig(**{"model_path": "tiny", "api_base": api_base, "timeout_s": 1, "max_retries": 0, **options})
    )


# -- raised errors -------------------------------------------------------------------------------


def test_hang_past_the_timeout_raises_timeout_error_fast(server: FaultServer) -> None:
    server.mode = "hang"
    backend = make_backend(server.api_base)
    started = time.monotonic()
    with pytest.raises(BackendTimeoutError) as caught:
        backend.generate("hi")
    assert time.monotonic() - started < 3  # 1 s timeout (+ first-call imports), not the 30 s hang
    assert caught.value.api_base == server.api_base
    assert isinstance(caught.value.cause, openai.APITimeoutError) and caught.value.__cause__ is caught.value.cause
    assert "timed out" in str(caught.value) and "/v1/chat/completions" in str(caught.value)


async def test_hang_past_the_timeout_raises_timeout_error_fast_async(server: FaultServer) -> None:
    server.mode = "hang"
    async with make_backend(server.api_base) as backend:
        started = time.monotonic()
        with pytest.raises(BackendTimeoutError):
            await backend.agenerate_with_tools("Go.", [{"name": "idle"}], tool_choice="required")
        assert time.monotonic() - started < 3  # 1 s timeout (+ first-call imports), not the 30 s hang


def test_unreachable_server_raises_connection_error_fast() -> None:
    api_base = closed_port_base()
    backend = make_backend(api_base, timeout_s=30)
    started = time.monotonic()
    with pytest.raises(BackendConnectionError) as caught:
        backend.generate("hi")
    assert time.monotonic() - started < 2
    assert caught.value.api_base == api_base
    assert f"cannot reach POST {api_base}/chat/completions" in str(caught.value)
    assert "is the vLLM server running" in str(caught.value)


async def test_unreachable_server_raises_connection_error_async() -> None:
    async with make_backend(closed_port_base()) as backend:
        with pytest.raises(BackendConnectionError):
            await backend.agenerate_with_tools("Go.", [{"name": "idle"}])
        with pytest.raises(BackendConnectionError):
            [chunk async for chunk in backend.astream("hi")]


def test_server_error_raises_with_status_and_message(server: FaultServer) -> None:
    server.mode = "error_500"
    with pytest.raises(ServerError) as caught:
        make_backend(server.api_base).generate("hi")
    assert caught.value.status_code == 500
    assert str(caught.value).endswith("answered 500: injected server error")


def test_stream_maps_errors_too(server: FaultServer) -> None:
    server.mode = "error_500"
    with pytest.raises(ServerError):
        list(make_backend(server.api_base).stream("hi"))


def test_wrong_api_base_path_is_a_rejected_request_not_a_missing_model(server: FaultServer) -> None:
    with pytest.raises(RequestRejectedError) as caught:
        make_backend(server.url + "/v2").generate("hi")
    assert caught.value.status_code == 404 and "answered 404: Not Found" in str(caught.value)


def test_unserved_model_raises_model_not_served(server: FaultServer) -> None:
    with pytest.raises(ModelNotServedError) as caught:
        make_backend(server.api_base, model_path="llama").generate("hi")
    assert caught.value.status_code == 404 and f"{server.api_base}/models" in str(caught.value)


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (1, 2)])
def test_retries_come_from_the_config_not_the_sdk(server: FaultServer, max_retries: int, attempts: int) -> None:
    server.mode = "error_500"
    with pytest.raises(ServerError):
        make_backend(server.api_base, max_retries=max_retries).generate("hi")
    assert len(server.requests) == attempts


def test_every_error_is_a_backend_error() -> None:
    for kind in (BackendConnectionError, BackendTimeoutError, ModelNotServedError, RequestRejectedError, ServerError):
        assert issubclass(kind, BackendError)


# -- status: never raises, says which check failed -------------------------------------------------


def test_status_is_available_when_healthy_and_model_served(server: FaultServer) -> None:
    status = make_backend(server.api_base).status()
    assert status.available and status.models == ["tiny"]
    assert status.reason == f"{server.api_base} is healthy and serves 'tiny'"


def test_wrong_model_name_is_unavailable_with_the_served_names(server: FaultServer) -> None:
    backend = make_backend(server.api_base, model_path="x")
    assert backend.is_available() is False
    assert backend.status().reason == f"model 'x' not served by {server.api_base}; served: ['tiny']"


def test_empty_model_path_accepts_whatever_is_served(server: FaultServer) -> None:
    assert make_backend(server.api_base, model_path="").status().reason.endswith("serves 'tiny'")


def test_health_down_is_unavailable_even_if_models_answer(server: FaultServer) -> None:
    server.mode = "health_down"
    status = make_backend(server.api_base).status()
    assert not status.available and status.reason.startswith(f"GET {server.url}/health answered 503")


def test_unreachable_server_is_unavailable_fast() -> None:
    api_base = closed_port_base()
    backend = make_backend(api_base, max_retries=5, timeout_s=30)  # probes never retry
    started = time.monotonic()
    status = backend.status()
    assert time.monotonic() - started < 2
    assert not status.available and status.reason.startswith(f"cannot reach GET {api_base.removesuffix('/v1')}/health")


async def test_astatus_matches_status(server: FaultServer) -> None:
    async with make_backend(server.api_base, model_path="x") as backend:
        assert (await backend.astatus()) == backend.status()
        server.mode = "health_down"
        assert "answered 503" in (await backend.astatus()).reason
