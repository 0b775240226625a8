"""Find a model's ``config.json`` before any download, so memory is planned before the weights come.

Looked for in this order (the first found wins):

1. a local model folder (``/models`` in the container, ``--model DIR`` on a host);
2. the local Hugging Face cache (what a previous start or ``arena-vllm download`` left);
3. the copies shipped in ``configs/models/`` for each profile's default model (a few KB each,
   with the repo and revision they were taken from), so a first start plans offline;
4. the hub: ``config.json`` alone through huggingface_hub, with the token file, unless
   ``HF_HUB_OFFLINE`` is set.

:func:`find_model_config` says where it found the file; :func:`load_model_config` raises
:class:`~ops.errors.ModelConfigMissing` naming every place it looked.

Example::

    found = find_model_config("Qwen/Qwen2.5-1.5B-Instruct", cache_dir=None)
    print(found.source, found.config["hidden_size"])   # "shipped configs/models/... @989aa79", 1536
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena_vllm.config import ProfileSettings, default_config_dir
from ops.errors import ModelConfigMissing

SHIPPED_FOLDER = "models"  # under configs/


@dataclass(frozen=True)
class FoundConfig:
    """A model's config.json and where it came from (for the log and ``plan``)."""

    config: dict[str, Any]
    source: str


def model_folder(path: Path) -> Path | None:
    """``path`` when it holds a model (a config.json), else None."""
    return path if (path / "config.json").is_file() else None


def resolve_model(profile: ProfileSettings, env: Mapping[str, str], local_dir: Path | None) -> str:
    """$VLLM_MODEL, else a local model folder, else the profile's model (``ops`` predicts with this too)."""
    if env.get("VLLM_MODEL"):
        return env["VLLM_MODEL"]
    if local_dir is not None:
        return str(local_dir)
    return profile.model


def shipped_file(repo: str) -> Path:
    """Where the shipped copy of ``repo``'s config.json lives (``configs/models/Org--Name.json``)."""
    return default_config_dir() / SHIPPED_FOLDER / f"{repo.replace('/', '--')}.json"


def shipped_config(repo: str) -> FoundConfig | None:
    """The shipped config.json of a profile's default model, or None for any other model."""
    path = shipped_file(repo)
    if not path.is_file():
        return None
    entry = json.loads(path.read_text())
    return FoundConfig(entry["config"], f"shipped {path.name} ({entry['repo']}@{entry['revision'][:7]})")


def hub_offline() -> bool:
    """huggingface_hub's own reading of HF_HUB_OFFLINE (1, true, yes, on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _from_cache(repo: str, cache_dir: str | None) -> FoundConfig | None:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir)
    return FoundConfig(json.loads(Path(cached).read_text()), "the HF cache") if isinstance(cached, str) else None


def _from_hub(repo: str, cache_dir: str | None, token: str | None) -> FoundConfig:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo, "config.json", cache_dir=cache_dir, token=token)
    return FoundConfig(json.loads(Path(path).read_text()), "the hub (config.json alone)")


def find_model_config(model: str, cache_dir: str | None, token: str | None = None, online: bool = True) -> FoundConfig:
    """config.json of a model folder or Hugging Face repo id, looked for as the module doc says.

    ``token``: the HF token's value (read from the token file by the caller), None for the
    hub's own lookup. ``online``: False never asks the hub (nor does ``HF_HUB_OFFLINE``).
    """
    folder = Path(model)
    if (folder / "config.json").is_file():
        return FoundConfig(json.loads((folder / "config.json").read_text()), f"the folder {model}")
    if folder.is_absolute() or model.startswith("."):
        raise ModelConfigMissing(
            f"no config.json in {model}: pass a model folder, or a Hugging Face id like Qwen/Qwen2.5-7B-Instruct"
        )
    looked = ["not a folder"]
    try:
        if found := _from_cache(repo=model, cache_dir=cache_dir):
            return found
        looked.append(f"not in the HF cache ({cache_dir or 'HF_HOME'})")
    except ImportError:  # the planner itself needs no hub; a host without huggingface_hub skips both lookups
        looked.append("huggingface_hub is not installed to read the HF cache")
    if found := shipped_config(model):
        return found
    looked.append(f"not shipped in configs/{SHIPPED_FOLDER}/")
    if not online or hub_offline():
        looked.append("the hub not asked (HF_HUB_OFFLINE is set)" if hub_offline() else "the hub not asked")
    else:
        try:
            return _from_hub(model, cache_dir, token)
        except ImportError:
            looked.append("huggingface_hub is not installed to ask the hub")
        except Exception as exc:  # noqa: BLE001 - the hub's errors vary by version; the message says what failed
            looked.append(f"the hub said: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    raise ModelConfigMissing(
        f"{model}: no config.json to plan from ({'; '.join(looked)}); pass a model folder, "
        "run `arena-vllm download`, or allow the hub (unset HF_HUB_OFFLINE, and set "
        "HF_TOKEN_FILE for a gated model)"
    )
