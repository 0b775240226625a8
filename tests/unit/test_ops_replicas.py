"""``ops replicas``: the override it writes, as ``docker compose config`` merges it (no containers started)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ops.compose import BASE_FILE, CPU_FILE, REPO, OpsError
from ops.replicas import gpu_groups, write_override, write_scrape_targets


def merged(files: list[str], override: Path) -> dict:
    cmd = ["docker", "compose", *[a for f in [*files, str(override)] for a in ("-f", f)], "config", "--format", "json"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def devices(service: dict) -> list[dict]:
    return service["deploy"]["resources"]["reservations"]["devices"]


def test_gpu_groups_split_by_tensor_parallel_size() -> None:
    assert gpu_groups(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    assert gpu_groups(["3"], 1) == [["3"]]
    with pytest.raises(OpsError, match="gpus-per-replica"):
        gpu_groups(["0", "1", "2"], 2)
    with pytest.raises(OpsError, match="twice"):
        gpu_groups(["0", "0"], 1)


def test_two_gpu_replicas_pinned_by_device_id(tmp_path: Path) -> None:
    override = write_override("gpu", gpus=["0", "1"], output=tmp_path / "replicas.yml")
    config = merged([BASE_FILE], override)
    services = config["services"]
    assert [d["device_ids"] for d in devices(services["vllm"])] == [["0"]]  # !override: count is gone
    assert "count" not in devices(services["vllm"])[0]
    assert [d["device_ids"] for d in devices(services["vllm-1"])] == [["1"]]
    assert "ports" not in services["vllm-1"]  # only the first replica publishes a host port
    assert services["vllm-1"]["image"] == services["vllm"]["image"]
    assert services["vllm-1"]["ipc"] == "host"
    agent = services["agent"]
    assert set(agent["depends_on"]) == {"vllm", "vllm-1"}
    assert agent["environment"]["VLLM_API_BASES"] == "http://vllm:8000/v1,http://vllm-1:8000/v1"


def test_one_pinned_gpu_changes_only_the_device_ids(tmp_path: Path) -> None:
    override = write_override("gpu", gpus=["2"], output=tmp_path / "replicas.yml")
    services = merged([BASE_FILE], override)["services"]
    assert set(services) == {"vllm", "agent"}
    assert devices(services["vllm"])[0]["device_ids"] == ["2"]


def test_cpu_replicas_copy_the_cpu_service_and_keep_variables(tmp_path: Path) -> None:
    override = write_override("cpu", count=3, output=tmp_path / "replicas.yml")
    text = override.read_text()
    assert "${VLLM_PROFILE:-cpu}" in text and "${VLLM_MODEL_DIR:-./models}:/models:ro" in text  # not resolved values
    services = merged([BASE_FILE, CPU_FILE], override)["services"]
    assert set(services) == {"vllm", "vllm-1", "vllm-2", "agent"}
    replica = services["vllm-2"]
    # The replica runs the image `vllm` builds: a build of its own would re-tag that image under its own label.
    assert replica["image"] == services["vllm"]["image"] and services["vllm"]["build"]["target"] == "cpu"
    assert "build" not in replica and replica["pull_policy"] == "never" and "deploy" not in replica
    models = next(v for v in replica["volumes"] if v["target"] == "/models")
    assert models["type"] == "bind" and models["read_only"] is True
    assert services["agent"]["environment"]["VLLM_API_BASES"].count(",") == 2


def test_one_replica_removes_the_override(tmp_path: Path) -> None:
    path = write_override("cpu", count=2, output=tmp_path / "replicas.yml")
    assert path is not None and path.is_file()
    assert write_override("cpu", count=1, output=path) is None
    assert not path.exists()


def test_gpus_on_the_cpu_stack_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="CPU stack"):
        write_override("cpu", gpus=["0"], output=tmp_path / "replicas.yml")


def test_scrape_targets_list_the_extra_replicas_for_prometheus(tmp_path: Path) -> None:
    path = write_scrape_targets(3, tmp_path / "vllm-replicas.yml")
    assert path is not None
    assert yaml.safe_load(path.read_text()) == [{"targets": ["vllm-1:8000", "vllm-2:8000"]}]
    assert write_scrape_targets(1, path) is None and not path.exists()
