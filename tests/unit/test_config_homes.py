"""Each setting has one home: configs/ YAML holds the values, the pydantic models only types and bounds.

A default in a model for a key the YAML also sets is a second copy that drifts (the agent's
``max_tokens`` once read 128 in Python and 256 in YAML); these tests load every option of every
config group and name each such key.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import BaseModel

from arena_vllm.backends import VLLMBackendConfig
from arena_vllm.config import Settings, available_options, compose_raw, default_config_dir
from ops.engine.model_config import SHIPPED_FOLDER

pytestmark = pytest.mark.usefixtures("clean_environment")


def nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (directly or as list items), and whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, True
    return None, False


def defaults_copying_yaml(model: type[BaseModel], data: dict[str, Any], prefix: str) -> list[str]:
    """Keys of ``data`` whose field in ``model`` (or a nested model) has a default of its own."""
    found = []
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        key = f"{prefix}.{name}"
        if not field.is_required():
            found.append(key)
        inner, is_list = nested_model(field.annotation)
        if inner is not None and is_list:
            for index, item in enumerate(data[name] or []):
                found += defaults_copying_yaml(inner, item, f"{key}.{index}")
        elif inner is not None and isinstance(data[name], dict):
            found += defaults_copying_yaml(inner, data[name], key)
    return found


def group_options() -> list[tuple[str, str]]:
    return [(group, option) for group in Settings.model_fields for option in available_options(group)]


def test_every_config_folder_is_a_validated_group() -> None:
    """configs/models/ is data, not a group: the shipped config.json of each profile's model (ops/engine)."""
    folders = {path.name for path in default_config_dir().iterdir() if path.is_dir()}
    assert folders - {SHIPPED_FOLDER} == set(Settings.model_fields)


@pytest.mark.parametrize(("group", "option"), group_options(), ids=[f"{g}={o}" for g, o in group_options()])
def test_no_model_default_repeats_a_yaml_value(group: str, option: str) -> None:
    data = compose_raw([f"{group}={option}"])[group]
    model = Settings.model_fields[group].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    assert defaults_copying_yaml(model, data, group) == [], "delete these defaults: the YAML is their home"


def test_the_guard_names_a_default_that_copies_the_yaml() -> None:
    class Inner(BaseModel):
        size: int = 3

    class Outer(BaseModel):
        name: str
        inner: Inner
        items: list[Inner]

    data = {"name": "x", "inner": {"size": 3}, "items": [{"size": 1}]}
    assert defaults_copying_yaml(Outer, data, "g") == ["g.inner.size", "g.items.0.size"]


def test_the_client_config_has_no_default_of_its_own() -> None:
    """VLLMBackendConfig fills what a caller leaves out from configs/backend/vllm.yaml."""
    assert [name for name, field in VLLMBackendConfig.model_fields.items() if not field.is_required()] == []
