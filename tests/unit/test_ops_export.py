"""``ops export k8s``: validated offline against production-stack's schema and Kubernetes' schemas; never hand-edited.

What is validated here, offline: the Helm values against the vendored chart's
``values.schema.json`` (plus: every key we write is one the schema or a template reads, since the
schema allows unknown keys); the chart rendered with those values (helm-python-sdk: Helm's Go SDK,
no binary) and the vLLM command it renders checked flag by flag against the profile; every
rendered object and the agent manifests against the Kubernetes 1.33 OpenAPI schemas in strict
mode (``kubernetes-validate``, which carries them). Not validated: a real cluster, and the
chart's optional dependencies (kube-prometheus-stack, prometheus-adapter), which are not vendored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from arena_vllm.config import ConfigError, available_options, load_settings
from ops.export import (
    CHART,
    ROUTER_SERVICE,
    ExportOptions,
    production_stack_values,
    render_export,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
TEMPLATES = "\n".join(path.read_text() for path in sorted((CHART / "templates").glob("*.yaml")))
GPU_PROFILES = [
    name for name in available_options("profile") if load_settings([f"profile={name}"]).profile.device == "gpu"
]


def test_there_are_gpu_profiles_to_export() -> None:
    assert GPU_PROFILES  # an empty list would skip every test below


@pytest.fixture(params=GPU_PROFILES)
def export(request: pytest.FixtureRequest) -> dict[str, str]:
    return render_export(ExportOptions(profile=request.param))


def test_values_validate_against_the_charts_schema(export: dict[str, str]) -> None:
    values = yaml.safe_load(export["values.yaml"])
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(values), key=str)
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_every_model_spec_key_is_known_to_the_chart(export: dict[str, str]) -> None:
    """The schema allows unknown keys, so a typo would pass it: each key must be in the schema or the template."""
    spec = yaml.safe_load(export["values.yaml"])["servingEngineSpec"]["modelSpec"][0]
    schema_keys = SCHEMA["properties"]["servingEngineSpec"]["properties"]["modelSpec"]["items"]["properties"]
    for key in spec:
        assert key in schema_keys or re.search(rf"\$modelSpec\.{key}\b", TEMPLATES), key
    vllm_keys = schema_keys["vllmConfig"]["properties"]
    for key in spec["vllmConfig"]:
        assert key in vllm_keys or re.search(rf"\.{key}\b", TEMPLATES), key


def test_values_carry_the_profile_and_secrets_only_by_reference(export: dict[str, str]) -> None:
    values = yaml.safe_load(export["values.yaml"])
    spec = values["servingEngineSpec"]["modelSpec"][0]
    profile = load_settings([f"profile={spec['name']}"]).profile
    config = spec["vllmConfig"]
    assert (spec["modelURL"], config["dtype"], config["maxModelLen"], config["maxNumSeqs"]) == (
        profile.model,
        profile.dtype,
        profile.max_model_len,
        profile.max_num_seqs,
    )
    assert config["gpuMemoryUtilization"] == profile.gpu_memory_utilization
    assert config["tensorParallelSize"] == spec["requestGPU"] == profile.tensor_parallel_size
    assert spec["enableTool"] is True and spec["toolCallParser"] == profile.tool_call_parser
    if profile.quantization:
        assert config["extraArgs"][:2] == ["--quantization", profile.quantization]
    assert set(spec["hf_token"]) == {"secretName", "secretKey"}
    assert set(values["servingEngineSpec"]["vllmApiKey"]) == {"secretName", "secretKey"}


def rendered(export: dict[str, str], release: str = "arena") -> list[dict]:
    """Every object the chart renders with the exported values (offline: no cluster, no helm binary)."""
    chart = helm.Chart.load(CHART)
    values = yaml.safe_load(export["values.yaml"])
    manifests = chart.render(values, name=release, namespace="arena", is_install=True)
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def assert_valid_kubernetes(obj: dict[str, Any]) -> None:
    """``obj`` against the Kubernetes schemas (strict: unknown fields fail); the failure names the object and path."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {'/'.join(map(str, exc.path))}")


def test_the_chart_renders_and_every_object_validates(export: dict[str, str]) -> None:
    objects = rendered(export)
    assert {"Deployment", "Service", "Secret"} <= {obj["kind"] for obj in objects}
    for obj in objects:
        assert_valid_kubernetes(obj)


def test_the_rendered_engine_runs_the_profile(export: dict[str, str]) -> None:
    """The chart turns the values into vLLM flags: check them against the profile, not against our own values."""
    name = yaml.safe_load(export["values.yaml"])["servingEngineSpec"]["modelSpec"][0]["name"]
    profile = load_settings([f"profile={name}"]).profile
    [engine] = [o for o in rendered(export) if o["kind"] == "Deployment" and "vllm" in o["metadata"]["name"]]
    [container] = engine["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    flags = dict(zip(command, command[1:]))
    assert command[command.index("serve") + 1] == profile.model
    assert flags["--max-model-len"] == str(profile.max_model_len)
    assert flags["--max-num-seqs"] == str(profile.max_num_seqs)
    assert flags["--dtype"] == profile.dtype
    assert flags["--tensor-parallel-size"] == str(profile.tensor_parallel_size)
    assert flags["--gpu_memory_utilization"] == str(profile.gpu_memory_utilization)
    assert flags["--tool-call-parser"] == profile.tool_call_parser and "--enable-auto-tool-choice" in command
    if profile.quantization:
        assert flags["--quantization"] == profile.quantization
    env = {item["name"]: item for item in container["env"]}
    for key in ("HF_TOKEN", "VLLM_API_KEY"):
        assert "value" not in env[key] and env[key]["valueFrom"]["secretKeyRef"]["name"].startswith("arena-")


def test_the_agent_calls_the_router_the_chart_renders(export: dict[str, str]) -> None:
    services = {o["metadata"]["name"]: o for o in rendered(export, "arena") if o["kind"] == "Service"}
    router = ROUTER_SERVICE.format(release="arena")
    assert router in services and services[router]["spec"]["ports"][0]["port"] == 80
    deployment = next(yaml.safe_load_all(export["agent.yaml"]))
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VLLM_API_BASE"] == f"http://{router}/v1"


def test_agent_manifests_validate_against_kubernetes_schemas(export: dict[str, str]) -> None:
    documents = list(yaml.safe_load_all(export["agent.yaml"]))
    assert [doc["kind"] for doc in documents] == ["Deployment", "Service"]
    for document in documents:
        assert_valid_kubernetes(document)


def test_agent_probes_secret_reference_and_resources(export: dict[str, str]) -> None:
    deployment = next(yaml.safe_load_all(export["agent.yaml"]))
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["requests"]
    assert {"name": "vllm-api-key", "secret": {"secretName": "arena-vllm-api-key"}} in pod["volumes"]
    assert not any(
        "API_KEY" in env["name"] and "value" in env and "FILE" not in env["name"] for env in container["env"]
    )


def test_a_broken_manifest_is_caught() -> None:
    """The validator is strict: an unknown field fails (so the test above can fail)."""
    deployment = next(yaml.safe_load_all(render_export(ExportOptions(profile=GPU_PROFILES[0]))["agent.yaml"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    values = production_stack_values(
        load_settings([f"profile={GPU_PROFILES[0]}"]).profile, ExportOptions(GPU_PROFILES[0])
    )
    values["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["maxModelLen"] = "long"
    assert list(Draft202012Validator(SCHEMA).iter_errors(values))


def test_a_cpu_profile_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="gpu-"):
        render_export(ExportOptions(profile="cpu"))


@pytest.mark.parametrize("folder", sorted(path.name for path in COMMITTED.iterdir()) if COMMITTED.is_dir() else [])
def test_committed_export_is_regenerated_from_configs(folder: str) -> None:
    """deploy/k8s/<profile>/ is exactly what the command writes: edit configs/, then rerun `ops export k8s`."""
    fresh = render_export(ExportOptions(profile=folder))
    on_disk = {path.name: path.read_text() for path in (COMMITTED / folder).glob("*.yaml")}
    assert on_disk == fresh, f"run: python -m ops export k8s --profile {folder}"


def test_there_is_a_committed_example() -> None:
    assert any(COMMITTED.iterdir())
