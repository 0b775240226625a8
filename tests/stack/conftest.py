"""One real CPU stack (vLLM + agent, from the repo's compose files) shared by the stack tests.

The stack is built and started once per session with testcontainers' ``DockerCompose``,
serving a tiny random-weight model made locally (no download). Every test in this folder
gets the ``stack`` marker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import CpuStack, start_cpu_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stack/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpuStack]:
    """The running CPU stack; torn down (volumes included) at the end of the session."""
    with start_cpu_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
