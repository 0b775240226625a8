"""The soak, short (issue 5): the code of ``benchmarks/soak.py`` (tests/support/soak.py), 8 agents x 10 ticks on the CPU stack.

Asserts correctness only (no errors, every action a known tool, every decision the model's,
the memory figures are read); the figures themselves are printed, never asserted, since CI
machines differ. The soak's failing side (vLLM stopped mid-run) is in test_faults.py.
"""

from __future__ import annotations

import pytest

from tests.support.soak import KNOWN_TOOLS, SoakOptions, report, run_soak
from tests.support.stack import Stack


def test_a_short_soak_has_no_errors_and_only_known_tools(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    options = SoakOptions(agent_url=stack.agent_url, agents=8, ticks=10, max_seconds=600)

    result = run_soak(options, stack.container("agent"))

    with capsys.disabled():
        print(f"\n[soak] {report(options, result)}")
    assert result.errors == 0, result.error_samples
    assert (result.ticks_done, result.decisions) == (10, 80)
    assert set(result.tools) <= KNOWN_TOOLS, result.tools
    # No fault injected: every one of the 80 is the model's (the soak's own verdict says the same).
    assert result.model_decisions == 80 and result.not_from_model == 0, result.failure_reasons
    assert result.ok and "verdict: ok" in report(options, result)
    assert len(result.latencies_s) == 10
    assert result.memory_start and result.memory_end and result.memory_end.container_bytes > 0
    assert result.memory_end.rss_bytes, "VmRSS of the agent process was not read"
