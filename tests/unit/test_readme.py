"""The README says what the code does: its generated parts match their sources."""

from __future__ import annotations

import re

from ops.compose import REPO
from ops.profiles import profiles_table

README = (REPO / "README.md").read_text()


def test_profiles_table_matches_configs() -> None:
    match = re.search(r"<!-- profiles:start -->\n(.*?)\n<!-- profiles:end -->", README, re.S)
    assert match, "README lost its profiles table markers"
    assert match.group(1) == profiles_table(), "regenerate it: python -m ops profiles"


def test_test_command_is_the_one_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -e 'client[test]' && ruff check . && ruff format --check . && python -m pytest" in README
    assert ".venv/bin/ruff check . && .venv/bin/ruff format --check ." in ci
    assert ".venv/bin/python -m pytest" in ci
