"""The engine's warm-up (ops/engine/warmup.py): seats x 2 constrained requests once /health answers, then the warm file.

The compose healthcheck waits for that file, so a warm-up must always end by writing it: with
how it went, also when the server failed every request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ops.engine import warmup
from tests.support.fault_server import FaultServer

REPO = Path(__file__).resolve().parents[2]


def test_a_warm_up_sends_two_rounds_at_the_seat_count_with_the_agents_sampling() -> None:
    with FaultServer(model="tiny") as server:
        outcome = warmup.warm(server.api_base.removesuffix("/v1"), "tiny", 4, "k", {"temperature": 0.7, "top_p": 0.9})
        assert outcome.startswith("warm-up at 4 seats: 8 requests in")
        assert len(server.requests) == 8 and server.authorizations[0] == "Bearer k"
        sent = server.requests[0]
        assert sent["response_format"]["type"] == "json_schema" and (sent["temperature"], sent["top_p"]) == (0.7, 0.9)


def test_failed_requests_still_write_the_warm_file_saying_so(tmp_path: Path) -> None:
    warm_file = tmp_path / "warm"
    with FaultServer(model="tiny", mode="error_500") as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ops.engine.warmup",
                "--url",
                server.api_base.removesuffix("/v1"),
                "--model",
                "tiny",
                "--seats",
                "2",
            ],
            input="",
            text=True,
            capture_output=True,
            cwd=REPO,
            env={"ARENA_WARM_FILE": str(warm_file), "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert "4 of 4 requests failed" in warm_file.read_text()
