"""Checkpoints: a folder with model.safetensors (weights), meta.json (everything needed to rebuild and
use the model: configs, label names, input size, normalisation, version, epoch, metrics) and
optimizer.pt (optimizer state, for --resume; loaded with weights_only=True).

Writes are atomic: the new folder is completed under a temporary name, then swapped in.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from agegender import __version__
from agegender.config import ModelConfig, TrainConfig
from agegender.labels import task_spec
from agegender.models import create_model

WEIGHTS, META, OPTIM = "model.safetensors", "meta.json", "optimizer.pt"


def label_names(cfg: ModelConfig) -> dict[str, list[str]]:
    return {t: list(task_spec(t).labels) for t in cfg.tasks}


def save_checkpoint(folder: str | os.PathLike, model: nn.Module, model_cfg: ModelConfig,
                    train_cfg: TrainConfig | None = None, optimizer: torch.optim.Optimizer | None = None,
                    epoch: int = 0, extra: dict | None = None) -> Path:
    """Write a checkpoint folder atomically. ``epoch`` = number of completed epochs."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIM)
    meta = {
        "format": "agegender-checkpoint",
        "version": __version__,
        "model": model_cfg.to_dict(),
        "train": train_cfg.to_dict() if train_cfg else None,
        "labels": label_names(model_cfg),
        # the input's size is the model's (model.input_size, stored once); read_meta fills it in here
        "input": {"channels": "RGB", "range": "0..255",
                  "layout": "NCHW", "mean": list(model_cfg.mean), "std": list(model_cfg.std)},
        "epoch": epoch,
        **(extra or {}),
    }
    (tmp / META).write_text(json.dumps(meta, indent=2))
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def find_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint folder itself, or its predecessor if a crash hit the swap."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / META).is_file() and (candidate / WEIGHTS).is_file():
            return candidate
    return None


def read_meta(folder: str | os.PathLike) -> dict:
    path = Path(folder) / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder}: not an agegender checkpoint ({err})") from None
    if meta.get("format") != "agegender-checkpoint":
        raise ValueError(f"{folder}: {META} is not an agegender checkpoint")
    try:
        size = int(meta["model"]["input_size"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: no model.input_size") from None
    given = meta.setdefault("input", {}).get("size")
    if given is not None and int(given) != size:  # checkpoints written before the size was stored once
        raise ValueError(f"{path}: input.size {given} disagrees with model.input_size {size}")
    meta["input"]["size"] = size  # one value for every reader (export writes it into the ONNX metadata)
    return meta


def load_checkpoint(folder: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(model in eval mode, meta). Never unpickles code: weights come from safetensors."""
    found = find_checkpoint(folder)
    if found is None:
        raise FileNotFoundError(f"{folder}: no checkpoint ({WEIGHTS} + {META}) found")
    meta = read_meta(found)
    try:
        model = create_model(ModelConfig.from_dict(meta["model"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{found}: {META} does not describe a model this version can build ({err})") from None
    load_weights(found, model)
    model.eval()
    return model, meta


def load_weights(folder: str | os.PathLike, model: nn.Module) -> None:
    """The checkpoint's safetensors weights into ``model``; a truncated, corrupt or mismatched file is a
    ValueError naming it."""
    path = Path(folder) / WEIGHTS
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as err:  # safetensors and torch raise their own types for bad files
        raise ValueError(f"{path}: unreadable or not this model's weights ({type(err).__name__}: "
                         f"{str(err)[:300]})") from None


def incomplete_checkpoint(folder: str | os.PathLike) -> bool:
    """A checkpoint folder holding files but no complete checkpoint (e.g. meta.json lost)."""
    folder = Path(folder)
    return find_checkpoint(folder) is None and folder.is_dir() and any(folder.iterdir())


def load_optimizer_state(folder: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    path = Path(folder) / OPTIM
    try:
        optimizer.load_state_dict(torch.load(path, weights_only=True))
    except Exception as err:  # a missing, truncated or foreign file: say which, do not train on from nothing
        raise ValueError(f"{path}: cannot restore the optimizer to resume ({type(err).__name__}: "
                         f"{str(err)[:300]})") from None
