"""Images streamed from an ImageFolder tree (``train/<class>/*``, ``val/<class>/*`` or ``test/<class>/*``): any size,
mode (RGB, L, RGBA, CMYK, P) and format PIL reads, decoded and augmented per image in DataLoader workers.

Each image's augmentation is drawn from ``(seed, epoch, index)``, not from a worker's random state, so a run gives
the same batches with 0, 1 or 8 workers and a resumed run the same as an uninterrupted one.
"""

import os
import random
import struct
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = [
    "DECODE_ERRORS",
    "BadImageError",
    "ImageFileDataset",
    "is_image_file",
    "list_image_folder",
    "open_image",
    "sample_seed",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
SKIP_HINT = "pass --skip-bad-images to skip such files and count them"
# what PIL's decoders raise on a corrupt, truncated or oversized (decompression bomb) file
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


class BadImageError(ValueError):
    """An image file that cannot be decoded: corrupt, truncated or not an image."""


def is_image_file(relative: PurePath) -> bool:
    """True for an image file (``IMAGE_EXTENSIONS``) under a class folder, given its path below the split; hidden
    files and folders (``.name``, macOS ``._name``) and ``__MACOSX`` are left out, in folders and archives alike."""
    return relative.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(relative.parts)


def _hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _eight_bit(image: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits as ``L``, scaled, where ``convert`` would clip 30000 to 255: 16-bit values / 257,
    floats in [0, 1] * 255, other 32-bit integers or floats stretched from their range."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if image.mode.startswith("I;16") or (image.mode == "I" and values.min() >= 0 and values.max() <= 65535):
        scaled = values / 257
    elif image.mode == "F" and values.min() >= 0 and values.max() <= 1:
        scaled = values * 255
    else:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255 / (high - low) if high > low else 0.0)
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8))


def open_image(data: Any, name: str) -> Image.Image:
    """Decode a file (a path or a binary file object) fully into an RGB image; errors name ``name``."""
    try:
        with Image.open(data) as image:
            image.load()  # decode now: a truncated file fails here, inside the try, not later in a transform
            if image.mode.startswith("I") or image.mode == "F":
                return _eight_bit(image).convert("RGB")
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")  # what PIL asks for palette images with transparency
            return image.convert("RGB")
    except DECODE_ERRORS as error:
        raise BadImageError(f"{name} cannot be read as an image ({error}); {SKIP_HINT}") from None


def list_image_folder(root: str | os.PathLike) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
    """``([(file, class index), ...], class names)`` of an ImageFolder split; class folders sorted by name.

    Errors name the path: a missing folder, a folder without class folders, a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}")
    classes = tuple(sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not _hidden([entry.name])))
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
