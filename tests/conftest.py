"""Shared fixtures: the real CPU stack (vLLM + agent in containers), started once per session, serving the tiny
random model (``stack``) or the real trained one, SmolLM2-135M-Instruct (``real_stack``).

Any test that asks for either gets the ``stack`` marker, so ``-m "not stack"`` runs
only the fast tests and ``-m stack`` only the ones against the real engine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arena_vllm.config import CONFIG_DIR_ENV, LEGACY_OVERRIDES_ENV, OVERRIDES_ENV, VLLM_OVERRIDES_ENV
from tests.support.stack import Stack, start_stack

#: Variables configs/ reads: a developer's shell must not change what the tests expect.
CONFIG_ENV = (
    OVERRIDES_ENV,
    VLLM_OVERRIDES_ENV,
    LEGACY_OVERRIDES_ENV,
    CONFIG_DIR_ENV,
    "VLLM_API_BASE",
    "VLLM_HOST",
    "VLLM_PORT",
    "VLLM_SERVED_MODEL_NAME",
    "VLLM_API_KEY",
    "VLLM_API_KEY_FILE",
    "AGENT_PORT",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"stack", "real_stack"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings composed from configs/ alone (modules opt in with ``pytestmark``)."""
    for name in CONFIG_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running CPU stack, built from the repo's compose files; ``down -v`` at session end."""
    with start_stack(tmp_path_factory.mktemp("stack"), "cpu") as running:
        yield running


@pytest.fixture(scope="module")
def real_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The CPU stack serving SmolLM2-135M-Instruct (built from its PyPI wheel, cached); ``down -v`` after the module,
    so a second engine does not share the 2 cores with every later test (the fault tests' timings among them)."""
    with start_stack(tmp_path_factory.mktemp("real-stack"), "cpu", model="smollm2") as running:
        yield running
