"""The test stack's build failure, as the benchmarks that start it print it: one line and the fix."""

from __future__ import annotations

from tests.support.stack import StackBuildError

PULL_FAILURE = """#1 [internal] load build definition
#2 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/python/manifests/3.11": dial tcp
Step 3: done
"""


def test_a_failed_build_says_its_last_error_and_the_fix_in_one_line() -> None:
    message = StackBuildError(PULL_FAILURE).one_line
    assert "\n" not in message
    assert "#2 ERROR: failed to do request" in message
    assert "python -m ops base-images" in message and "PYTHON_BASE" in message
