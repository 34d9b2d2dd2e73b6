"""The one checkpoint format of the torch learners: a directory, never a pickle.

    <dir>/model.safetensors           every network weight and buffer (what deployment needs)
    <dir>/training_state.safetensors  optimiser moments, RNG states, counters (what exact resume needs)
    <dir>/config.json                 hyper-parameters, observation/action spec, anything else as JSON

Optimiser hyper-parameters (lr, betas, ...) and any non-tensor RNG state travel in the safetensors
metadata as JSON strings. Directories are written next to the target and renamed into place, so a
crash while saving leaves the previous checkpoint intact. A missing or damaged file is a
`CheckpointError`: one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tether.errors import BadInput

MODEL_FILE = "model.safetensors"
TRAINING_FILE = "training_state.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(BadInput):
    """A checkpoint directory with a file missing or damaged; the message names the file and the reason."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint directory holds, loaded into memory."""

    weights: dict[str, torch.Tensor]
    training: dict[str, torch.Tensor]
    training_meta: dict[str, Any]
    config: dict[str, Any]


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared or strided storage: give it contiguous CPU copies."""
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}


def save_checkpoint(
    directory: Path,
    *,
    weights: dict[str, torch.Tensor],
    config: dict[str, Any],
    training: dict[str, torch.Tensor] | None = None,
    training_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing an older one at the same path)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(directory.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_file(_plain(weights), str(staging / MODEL_FILE))
    if training is not None:
        meta = {"json": json.dumps(training_meta or {})}
        save_file(_plain(training), str(staging / TRAINING_FILE), metadata=meta)
    (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    previous = directory.with_name(directory.name + ".old")
    if directory.exists():
        shutil.rmtree(previous, ignore_errors=True)
        directory.rename(previous)
    staging.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)
    return directory


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path.parent}: {path.name} is missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({error})") from None


def _json_object(text: str, source: Path) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"checkpoint {source}: invalid JSON: {error}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint {source}: expected a JSON object, got {type(value).__name__}")
    return value


def load_checkpoint(directory: Path, *, training: bool = False) -> Checkpoint:
    """Read a checkpoint directory; with `training`, the resume state too. Errors name the file and reason."""
    directory = Path(directory)
    config = checkpoint_config(directory)
    weights, _ = _read(directory / MODEL_FILE)
    state: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    if training:
        state, raw = _read(directory / TRAINING_FILE)
        meta = _json_object(raw.get("json", "{}"), directory / TRAINING_FILE)
    return Checkpoint(weights=weights, training=state, training_meta=meta, config=config)


def checkpoint_config(directory: Path) -> dict[str, Any]:
    """A checkpoint's config.json alone: what it is and what it observes, without loading weights."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory}: {CONFIG_FILE} is missing")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise CheckpointError(f"checkpoint {path}: not UTF-8 text") from None
    return _json_object(text, path)


def checkpoint_kind(directory: Path) -> str:
    """The learner that wrote a checkpoint (config.json "kind"), so loaders can dispatch without loading weights."""
    path = Path(directory) / CONFIG_FILE
    kind = checkpoint_config(directory).get("kind")
    if not isinstance(kind, str):
        raise CheckpointError(f"checkpoint {path}: no \"kind\" names the learner that wrote it")
    return kind


# --- optimisers --------------------------------------------------------------------------


def optimizer_to_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimiser's state to named tensors plus its JSON-able hyper-parameters."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            name = f"{prefix}.{index}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of `optimizer_to_tensors`: restore moments and hyper-parameters in place."""
    state: dict[int, dict[str, Any]] = {}
    for source in (tensors, meta["scalars"]):
        for name, value in source.items():
            if name.startswith(prefix + "."):
                index, key = name[len(prefix) + 1 :].split(".", 1)
                state.setdefault(int(index), {})[key] = value
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
