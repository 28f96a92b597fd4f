"""Training checkpoints that survive a crash: every checkpoint is written into a temporary folder and renamed into
place, and the ``latest`` pointer is replaced atomically, so a run killed mid-write still resumes from the last
complete checkpoint.

A checkpoint folder holds ``model.safetensors`` (and ``ema.safetensors``), loadable without pickle, and
``state.pt`` with the optimizer, scheduler, gradient-scaler and loop state, read back with ``weights_only=True``.
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["find_checkpoint", "load_training_state", "save_training_state"]

LATEST = "latest"


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous tensors that share no memory
    return {name: tensor.detach().contiguous().clone() for name, tensor in module.state_dict().items()}


def save_training_state(
    directory: str | os.PathLike,
    epoch: int,
    model: nn.Module,
    state: dict[str, Any],
    ema: nn.Module | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``epoch_NNNN`` under ``directory`` atomically and point ``latest`` at it.

    ``state`` holds everything besides the weights (optimizer, scheduler, counters); it must be loadable with
    ``weights_only=True`` (tensors, numbers, strings, lists and dicts). Only the newest ``keep`` checkpoints stay.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{epoch:04d}"
    final = directory / name
    partial = directory / f".{name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    save_file(_weights(model), str(partial / "model.safetensors"), metadata={"epoch": str(epoch)})
    if ema is not None:
        save_file(_weights(ema), str(partial / "ema.safetensors"), metadata={"epoch": str(epoch)})
    torch.save(state, partial / "state.pt")
    for path in partial.iterdir():  # contents on disk before the rename makes them visible
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():  # re-running an epoch after a resume: replace the old copy
        shutil.rmtree(final)
    os.replace(partial, final)
    pointer = directory / f".{LATEST}.{os.getpid()}.partial"
    _fsync_write(pointer, json.dumps({"checkpoint": name, "epoch": epoch}).encode())
    os.replace(pointer, directory / LATEST)
    kept = sorted(p for p in directory.glob("epoch_*") if p.is_dir())
    for old in kept[: max(len(kept) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder ``path`` names: a checkpoint itself, a checkpoints folder, or a run's output folder."""
    path = Path(path)
    for candidate in (path, path / "checkpoints"):
        if (candidate / "state.pt").is_file():
            return candidate
        pointer = candidate / LATEST
        if pointer.is_file():
            target = candidate / json.loads(pointer.read_text())["checkpoint"]
            if (target / "state.pt").is_file():
                return target
    raise FileNotFoundError(
        f"no checkpoint at {path}: expected a folder with state.pt, or a run folder whose checkpoints/latest names one"
    )


def load_training_state(
    checkpoint: str | os.PathLike, model: nn.Module, ema: nn.Module | None = None
) -> dict[str, Any]:
    """Load the weights of ``checkpoint`` into ``model`` (and ``ema``) and return its ``state`` dictionary."""
    from safetensors.torch import load_file

    from ..checkpoint import check_state_dict_fits

    checkpoint = find_checkpoint(checkpoint)
    weights = load_file(str(checkpoint / "model.safetensors"))
    check_state_dict_fits(model, weights, source=str(checkpoint / "model.safetensors"))
    model.load_state_dict(weights)
    if ema is not None:
        ema_file = checkpoint / "ema.safetensors"
        if not ema_file.is_file():
            raise FileNotFoundError(f"{checkpoint} has no ema.safetensors, but this run averages weights (EMA)")
        ema.load_state_dict(load_file(str(ema_file)))
    return torch.load(checkpoint / "state.pt", weights_only=True)
