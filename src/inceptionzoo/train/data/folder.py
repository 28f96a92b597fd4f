"""Images streamed from an ImageFolder tree (``train/<class>/*``, ``val/<class>/*`` or ``test/<class>/*``): any size,
mode (RGB, L, RGBA, CMYK, P) and format PIL reads, decoded and augmented per image in DataLoader workers.

Each image's augmentation is drawn from ``(seed, epoch, index)``, not from a worker's random state, so a run gives
the same batches with 0, 1 or 8 workers and a resumed run the same as an uninterrupted one.
"""

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ... import images
from ...images import DECODE_ERRORS, IMAGE_EXTENSIONS, BadImageError, is_hidden, is_image_file

__all__ = [
    "DECODE_ERRORS",
    "BadImageError",
    "ImageFileDataset",
    "is_image_file",
    "list_image_folder",
    "open_image",
    "sample_seed",
]

SKIP_HINT = "pass --skip-bad-images to skip such files and count them"


def open_image(data: Any, name: str) -> Image.Image:
    """``images.open_image``, its errors saying how training skips unreadable files."""
    return images.open_image(data, name, SKIP_HINT)


def list_image_folder(root: str | os.PathLike) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
    """``([(file, class index), ...], class names)`` of an ImageFolder split; class folders sorted by name.

    Errors name the path: a missing folder, a folder without class folders, a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}")
    classes = tuple(sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not is_hidden([entry.name])))
    if not classes:
        raise ValueError(f"{root} has no class folders: expected {root}/<class>/<image files>")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(
            str(path) for path in folder.rglob("*") if is_image_file(path.relative_to(folder)) and path.is_file()
        )
        if not files:
            raise ValueError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); remove it or add images"
            )
        samples += [(file, label) for file in files]
    return samples, classes


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation in one epoch (independent of worker, rank and batch)."""
    return (seed * 1_000_003 + epoch * 7_919 + index * 104_729) % 2**63


class _SeededDraws:
    """Seed Python's, numpy's and torch's generators for one image, and put the caller's state back afterwards
    (with 0 workers the transforms run in the training process, whose dropout must not see these draws)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.saved = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        random.setstate(self.saved[0])
        np.random.set_state(self.saved[1])
        torch.random.set_rng_state(self.saved[2])


class ImageFileDataset(torch.utils.data.Dataset):
    """``(image tensor, label)`` for a list of ``(file, label)``, decoded and transformed on demand.

    ``skip_bad`` returns None for an unreadable file (the collate function drops and counts it) instead of raising
    ``BadImageError``. ``set_epoch`` reaches worker processes too: the epoch lives in shared memory.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        transform: Callable[[Image.Image], torch.Tensor],
        seed: int = 0,
        skip_bad: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.classes = tuple(classes)
        self.transform = transform
        self.seed = seed
        self.skip_bad = skip_bad
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        path, label = self.samples[index]
        try:
            image = open_image(path, path)
        except BadImageError:
            if self.skip_bad:
                return None
            raise
        with _SeededDraws(sample_seed(self.seed, int(self._epoch), index)):
            return self.transform(image), label
