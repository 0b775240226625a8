"""Warm the engine at its seat count before the stack reports ready (issue 22).

After a start, vLLM's first large batches pay one-off costs inside the first game ticks: Triton
compiles of its top-k/top-p sampler at each new batch size (~23% of the engine's time in the
first 256-agent ticks, measured on an H200) and the first grammar compiles. The entrypoint
starts this module beside the server (:func:`start`); it waits for ``/health``, sends
``max_num_seqs`` short JSON-schema requests at once, sampled as the agent samples, and then
writes :data:`WARM_FILE`, which the compose healthcheck waits for. A warm-up that fails still
writes the file (with the reason): it may slow the first ticks, never block the stack.

Run by hand against a running server::

    python -m ops.engine.warmup --url http://127.0.0.1:8000 --model local-model --seats 256 < /dev/null
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: Written when the warm-up is over (its first line says how it went); the healthcheck waits for it.
WARM_FILE = Path(os.environ.get("ARENA_WARM_FILE", "/tmp/arena-vllm-warm"))
#: A start that takes longer than this (a first download of a 7B model) is not waited for.
HEALTH_WAIT_S = 1800.0
REQUEST_TIMEOUT_S = 300.0
HEALTH_PROBE_TIMEOUT_S = 5.0
#: A tiny schema: every request goes through the structured-output path, as every decision does.
SCHEMA = {
    "type": "object",
    "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["x"],
    "additionalProperties": False,
}


def start(url: str, model: str, seats: int, api_key: str | None, sampling: dict[str, float]) -> None:
    """Start the warm-up beside the server, in its own session; the key goes through its stdin, never env/argv.

    Started through a middle process that exits at once (a double fork), so the warm-up is an
    orphan whose parent is the container's init (compose ``init: true``), which reaps it when it
    ends: a child of the entrypoint would stay a zombie, since the exec'd vLLM never waits for it.
    """
    WARM_FILE.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "ops.engine.warmup",
        "--url",
        url,
        "--model",
        model,
        "--seats",
        str(seats),
        "--sampling",
        json.dumps(sampling),
    ]
    middle = os.fork()
    if middle == 0:  # the middle process: start the warm-up, hand it the key, leave it to init
        status = 1
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                start_new_session=True,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
            assert child.stdin is not None
            child.stdin.write(api_key or "")
            child.stdin.close()
            status = 0
        except BaseException as exc:  # one line, and the entrypoint writes the warm file instead
            print(f"run_vllm_server: the warm-up did not start: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(status)
    _, status = os.waitpid(middle, 0)  # reaps the middle process; the warm-up runs on
    if os.waitstatus_to_exitcode(status) != 0:
        WARM_FILE.write_text("warm-up did not start\n")  # the healthcheck waits for the file: never block the stack


def wait_healthy(url: str, deadline_s: float) -> bool:
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=HEALTH_PROBE_TIMEOUT_S) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    return False


def one_request(url: str, model: str, api_key: str, sampling: dict[str, float], index: int) -> str | None:
    """One short constrained request; None when it answered, else why not."""
    body = {
        "model": model,
        "max_tokens": 8,
        **sampling,
        "messages": [{"role": "user", "content": f"Warm-up {index}: answer with a digit."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "warmup", "schema": SCHEMA}},
    }
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key or 'EMPTY'}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()
        return None
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)


def warm(url: str, model: str, seats: int, api_key: str, sampling: dict[str, float]) -> str:
    """Two rounds of ``seats`` requests at once (the second finds every batch size compiled); a line saying how it went."""
    if not wait_healthy(url, HEALTH_WAIT_S):
        return f"skipped: {url}/health did not answer within {HEALTH_WAIT_S:.0f} s"
    started = time.monotonic()
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=seats) as pool:
        for _ in range(2):
            errors += [e for e in pool.map(lambda i: one_request(url, model, api_key, sampling, i), range(seats)) if e]
    took = time.monotonic() - started
    if errors:
        return (
            f"warm-up at {seats} seats: {len(errors)} of {2 * seats} requests failed in {took:.1f} s: {errors[0][:200]}"
        )
    return f"warm-up at {seats} seats: {2 * seats} requests in {took:.1f} s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True)
    parser.add_argument("--seats", type=int, required=True, help="requests at once: the profile's max_num_seqs")
    parser.add_argument("--sampling", default="{}", help="JSON: temperature, top_p as the agent sends them")
    args = parser.parse_args(argv)
    api_key = sys.stdin.read().strip() if not sys.stdin.isatty() else ""
    outcome = warm(args.url, args.model, args.seats, api_key, json.loads(args.sampling))
    WARM_FILE.write_text(outcome + "\n")
    print(f"run_vllm_server: {outcome}", flush=True)


if __name__ == "__main__":
    main()
