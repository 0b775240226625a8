"""A benchmark that starts the test stack ends in one line and the fix when the images do not build."""

from __future__ import annotations

import pytest

from benchmarks import bench_tick
from tests.support.stack import StackBuildError

PULL_FAILURE = """#1 [internal] load build definition
#2 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/python/manifests/3.11": dial tcp
Step 3: done
"""


def test_build_error_reason_is_the_last_error_line() -> None:
    assert StackBuildError(PULL_FAILURE).reason.startswith("#2 ERROR: failed to do request")


def test_started_stack_exits_with_the_reason_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_build(*_args: object, **_kwargs: object) -> None:
        raise StackBuildError(PULL_FAILURE)

    monkeypatch.setattr(bench_tick, "start_stack", failing_build)
    monkeypatch.setenv("AGENT_OVERRIDES", "")  # started_stack writes it; the patch puts it back
    with pytest.raises(SystemExit) as exited, bench_tick.started_stack():
        pass
    message = str(exited.value.code)
    assert "\n" not in message
    assert "registry-1.docker.io" in message
    assert "python -m ops base-images" in message and "PYTHON_BASE" in message
