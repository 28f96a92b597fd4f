"""Training checkpoints that survive a crash: every checkpoint is written into a temporary folder and renamed into
place, and the ``latest`` pointer is replaced atomically, so a run killed mid-write still resumes from the last
complete checkpoint.

A checkpoint folder holds ``model.safetensors`` (and ``ema.safetensors``), loadable without pickle, and
``state.pt`` with the optimizer, scheduler, gradient-scaler and loop state, read back with ``weights_only=True``.
"""

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, CheckpointMismatchError, CorruptCheckpointError
from .data.cache import partial_path

__all__ = [
    "RunFolderLockedError",
    "RunLock",
    "find_checkpoint",
    "load_training_state",
    "remove_stale_partials",
    "save_training_state",
]

LATEST = "latest"
LOCK = ".lock"


class RunFolderLockedError(RuntimeError):
    """The output folder is held by another run (its ``.lock`` names the process)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and folders (``.<name>.<pid>[.<random>].partial``) that processes no longer
    running left in ``folder`` when they were killed mid-write; returns what was deleted."""
    removed = []
    for path in Path(folder).glob(".*.partial"):
        parts = path.name.split(".")
        pid = next((int(part) for part in parts[2:-1] if part.isdigit()), None)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class RunLock:
    """``<folder>/.lock`` (pid, host, start time), created exclusively: one run writes a folder at a time. A lock
    whose process is gone from this host (a crash) is taken over with a note; any other is an error naming it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.notes: list[str] = []
        self._created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(handle, "w") as file:
                json.dump(record, file)
            self.record = record
            return
        raise RunFolderLockedError(f"{self.path} could not be taken: another run took it at the same moment")

    def _take_over_if_stale(self) -> None:
        try:
            holder = json.loads(self.path.read_text())
            pid, host, started = int(holder["pid"]), str(holder["host"]), holder.get("started", "an unknown time")
        except (OSError, ValueError, KeyError, TypeError):
            holder = None
        if holder is None:
            self.notes.append(f"{self.path} was unreadable (a run killed while writing it); taken over")
        elif host == socket.gethostname() and not _pid_alive(pid):
            self.notes.append(f"{self.path}: the run of pid {pid} on {host} (started {started}) is no longer "
                              "running; its lock was taken over")  # fmt: skip
        else:
            raise RunFolderLockedError(
                f"{self.folder} is in use by another run: pid {pid} on {host}, started {started} (its lock is "
                f"{self.path}). Wait for it to finish, or choose another --output; if that run is gone (another "
                "host that crashed), delete the lock file"
            )
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock (and the folder, when this run created it and left nothing in it)."""
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
        if self._created_folder:
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                self.folder.rmdir()


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
    """Write checkpoint ``epoch_NNNN`` (``NNNN`` is ``epoch``: the training loop passes the epochs completed, so
    the first epoch's is ``epoch_0001``) under ``directory`` atomically and point ``latest`` at it. Runs of earlier
    versions, which numbered the folders from 0, resume as well: ``latest`` names the folder, ``state`` the epoch.

    ``state`` holds everything besides the weights (optimizer, scheduler, counters); it must be loadable with
    ``weights_only=True`` (tensors, numbers, strings, lists and dicts). Only the newest ``keep`` checkpoints stay.
    """
    from safetensors.torch import save_file

    if keep < 1:
        raise ValueError(f"keep must be 1 or more (the checkpoint just written stays), got {keep}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(directory)
    name = f"epoch_{epoch:04d}"
    final = directory / name
    partial = partial_path(final)
    partial.mkdir()
    try:
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
    finally:  # a failed write (a full disk) leaves no temporary folder behind
        shutil.rmtree(partial, ignore_errors=True)
    pointer = partial_path(directory / LATEST)
    _fsync_write(pointer, json.dumps({"checkpoint": name, "epoch": epoch}).encode())
    os.replace(pointer, directory / LATEST)
    kept = sorted(p for p in directory.glob("epoch_*") if p.is_dir())
    for old in kept[: max(len(kept) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _pointed(pointer: Path) -> str:
    """The checkpoint folder name that a ``latest`` file holds: a plain name inside its own folder."""
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as error:  # ValueError covers bad JSON and bad UTF-8
        raise CorruptCheckpointError(
            f'{pointer} is not a checkpoint pointer (JSON with a "checkpoint" name): {type(error).__name__}: {error}'
        ) from None
    folder = pointer.parent.resolve()
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or ".." in name
            or (folder / name).resolve().parent != folder):  # fmt: skip
        raise CheckpointError(f"{pointer} names {name!r}, which is not a checkpoint folder inside {pointer.parent}")
    return name


def run_folder_of(checkpoint: str | os.PathLike) -> Path:
    """The run folder (``<run>/checkpoints/epoch_N``'s ``<run>``) of the checkpoint that ``checkpoint`` names."""
    return find_checkpoint(checkpoint).parent.parent


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder ``path`` names: a checkpoint itself, a checkpoints folder, or a run's output folder.
    A ``latest`` pointer that is not valid, or names anything but a folder beside it, is an error naming it."""
    path = Path(path)
    for candidate in (path, path / "checkpoints"):
        if (candidate / "state.pt").is_file():
            return candidate
        pointer = candidate / LATEST
        if pointer.is_file():
            target = candidate / _pointed(pointer)
            if (target / "state.pt").is_file():
                return target
            raise FileNotFoundError(f"{pointer} names {target.name}, but {target} holds no state.pt")
    raise FileNotFoundError(
        f"no checkpoint at {path}: expected a folder with state.pt, or a run folder whose checkpoints/latest names one"
    )


def load_training_state(
    checkpoint: str | os.PathLike,
    model: nn.Module,
    ema: nn.Module | None = None,
    check_state: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Load the weights of ``checkpoint`` into ``model`` (and ``ema``) and return its ``state`` dictionary, with
    the checks of every other loader: unreadable files, NaN / infinite weights and pickles that would run code
    are errors naming the file. ``check_state(state)`` runs before the weights are read, so that a run resumed with
    other settings (another architecture) hears which settings differ rather than which weights do not fit."""
    from ..checkpoint import check_state_dict_fits, load_state_dict, read_pickled

    checkpoint = find_checkpoint(checkpoint)
    state = read_pickled(checkpoint / "state.pt")
    missing = [key for key in ("epoch", "train_seconds", "config", "optimizer", "scheduler")
               if not isinstance(state, dict) or key not in state]  # fmt: skip
    if missing:
        raise CheckpointMismatchError(f"{checkpoint / 'state.pt'} is not a training state: no {', '.join(missing)}")
    if check_state is not None:
        check_state(state)
    weights = load_state_dict(checkpoint / "model.safetensors")
    check_state_dict_fits(model, weights, source=str(checkpoint / "model.safetensors"))
    if ema is not None:
        ema_file = checkpoint / "ema.safetensors"
        if not ema_file.is_file():
            raise FileNotFoundError(f"{checkpoint} has no ema.safetensors, but this run averages weights (EMA)")
        ema_weights = load_state_dict(ema_file)
        check_state_dict_fits(ema, ema_weights, source=str(ema_file))
    model.load_state_dict(weights)
    if ema is not None:
        ema.load_state_dict(ema_weights)
    return state
