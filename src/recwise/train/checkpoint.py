"""Checkpoints: safetensors for tensors, JSON for everything else; nothing is ever unpickled.

A model file (``model.safetensors`` + ``model.json``) holds the weights, the registry name, the
exact config and the schema, so :func:`load_model` rebuilds the model without the dataset.
A training checkpoint folder adds the optimizer state, the RNG state and the run state; it is
written to a temporary folder and swapped in, so a kill at any moment leaves a usable one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from recwise.config import config_from_dict, config_to_dict
from recwise.data.schema import Schema
from recwise.errors import CheckpointError
from recwise.results import atomic_write_text, usual_modes

__all__ = ["load_model", "load_training_state", "save_model", "save_tensors", "save_training_state"]


def model_meta(model: nn.Module) -> dict[str, Any]:
    m: Any = model  # a registered model: registry_name, config and schema
    return {
        "task": getattr(m, "task", "msr"),
        "model": type(m).registry_name,
        "config": config_to_dict(m.config),
        "schema": m.schema.to_dict(),
    }


def save_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` (moved to the CPU, made contiguous) to the safetensors file ``path`` atomically:
    a temporary name in the same folder, the usual file mode (not ``mkstemp``'s 0600), then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    usual_modes(tmp)
    os.replace(tmp, path)
    return path


def save_model(path: str | os.PathLike[str], model: nn.Module) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json`` atomically; returns the safetensors path.
    The JSON is written first: a ``.safetensors`` on disk always has its architecture beside it."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(str(base) + ".json"), json.dumps(model_meta(model), indent=1, default=list))
    return save_tensors(str(base) + ".safetensors", model.state_dict())


def load_model(path: str | os.PathLike[str], *, task: str | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (architecture from the JSON, weights from safetensors)."""
    from recwise.registry import get_model

    base = Path(path).with_suffix("")
    try:
        meta = json.loads(Path(str(base) + ".json").read_text())
        tensors = load_file(str(base) + ".safetensors")
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint file {exc.filename} not found") from None
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint {base} is corrupt: {exc}") from None
    cls = get_model(task or meta["task"], meta["model"])
    model = cls(Schema.from_dict(meta["schema"]), config_from_dict(cls.Config, meta["config"]))
    _load_state(model, tensors, base)
    return model


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {where} does not match the model: missing {missing}, "
                              f"unexpected {unexpected}")


# ------------------------------------------------------------------------ training checkpoints


def save_training_state(
    folder: Path,
    *,
    model: nn.Module,
    best: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Write a training checkpoint folder atomically (temp folder, then swap)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_model(tmp / "model", model)
        save_file({k: v.cpu().contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
        opt = optimizer.state_dict()
        opt_tensors: dict[str, torch.Tensor] = {}
        for pid, pstate in opt["state"].items():
            for key, value in pstate.items():
                tensor = value if torch.is_tensor(value) else torch.tensor(value)
                opt_tensors[f"{pid}.{key}"] = tensor.cpu().contiguous()
        opt_tensors["__rng__"] = torch.get_rng_state()
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "param_groups": opt["param_groups"]}, indent=1))
        usual_modes(tmp)
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_training_state(
    folder: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model, optimizer and RNG from a checkpoint folder; returns (state, best weights)."""
    if not (folder / "state.json").exists() and folder.with_name(folder.name + ".old").exists():
        folder = folder.with_name(folder.name + ".old")  # killed during the swap
    try:
        state = json.loads((folder / "state.json").read_text())
        weights = load_file(str(folder / "model.safetensors"))
        best = load_file(str(folder / "best.safetensors"))
        opt_tensors = load_file(str(folder / "optimizer.safetensors"))
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"cannot resume: {exc.filename} is missing (run without --resume to start over)") from None
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"cannot resume: checkpoint in {folder} is corrupt ({exc}); run without --resume") from None
    _load_state(model, weights, folder)
    torch.set_rng_state(opt_tensors.pop("__rng__"))
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in opt_tensors.items():
        pid, key = name.split(".", 1)
        opt_state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state, best
