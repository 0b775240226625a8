"""Shared fixtures: the real CPU stack (vLLM + agent in containers), started once per session.

Any test that asks for ``stack`` gets the ``stack`` marker, so ``-m "not stack"`` runs
only the fast tests and ``-m stack`` only the ones against the real engine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import CpuStack, start_cpu_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpuStack]:
    """The running CPU stack, built from the repo's compose files; ``down -v`` at session end."""
    with start_cpu_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
