"""CIFAR-10 as decoded tensors in memory, with augmentation applied to whole batches.

The images are read once from an ImageFolder layout (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), either a
folder or a ``.tar.gz`` of one, decoded to ``uint8`` tensors and cached as a ``.pt`` file (read back with
``weights_only=True``). Training then never touches PIL: crops and flips are done on batches, which keeps two
CPU cores busy with the model instead of with image decoding.

An archive is read by the folders' rules: images (``IMAGE_EXTENSIONS``) in ``<split>/<class>/`` or deeper, hidden
files and ``__MACOSX`` left out, the memory budget and ``skip_bad`` honoured; a member named outside the archive
(absolute, or with ``..``) is refused. The cache entry is keyed by every file's path, size and time (a folder) or the
archive's, so a changed source is decoded again.
"""

import io
import os
import pickle
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ...images import BadImageError, is_image_file, read_tar
from .cache import cache_key, file_stamps, read_entry, write_entry
from .folder import list_image_folder, open_image, sample_seed
from .transforms import draw_cifar_crop, normalize, pad_crop_flip

__all__ = [
    "CIFAR10_CLASSES",
    "ImageTensors",
    "balanced_split",
    "batches",
    "load_dataset",
    "load_image_folder",
    "load_torchvision_cifar10",
    "split_validation",
    "subset",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class ImageTensors:
    """A split held in memory: ``images`` is ``uint8`` ``(N, 3, H, W)``, ``labels`` is ``int64`` ``(N,)``;
    ``skipped`` counts the unreadable images of the source left out (``skip_bad``)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.labels)


def _below_split(name: str, split: str) -> PurePosixPath | None:
    """An archive member's path below its ``split`` folder (``class/.../file``), or None when it is not in one."""
    parts = PurePosixPath(name).parts
    return PurePosixPath(*parts[parts.index(split) + 1 :]) if split in parts[:-2] else None


def _archive_files(source: Path, split: str, limit: int | None) -> Iterator[tuple[PurePosixPath, str, bytes]]:
    """``(path below split, where, bytes)`` of the images of ``split`` in an archive, by the folders' rules; a file
    larger than ``limit`` bytes is refused before it is read."""

    def wanted(member: tarfile.TarInfo) -> bool:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{source}: member {member.name!r} is named outside the archive (an absolute path or "
                             "'..'); refusing the archive: extract it and check its files")  # fmt: skip
        below = _below_split(member.name, split)
        if below is None or not is_image_file(below):
            return False
        if limit is not None and member.size > limit:
            raise ValueError(f"{source}:{member.name} is {member.size / 2**20:.1f} MiB, over the memory budget of "
                             f"{limit / 2**30:g} GB (--memory-budget-gb) on its own")  # fmt: skip
        return True

    for member, data in read_tar(source, wanted, error=ValueError):
        yield _below_split(member.name, split), f"{source}:{member.name}", data


def _decode(
    files: Iterator[tuple[PurePosixPath, str, bytes]], source: Path, split: str, budget_gb: float | None, skip_bad: bool
) -> ImageTensors:
    """Decode every image of one size, ordered by class then path as the folder path lists them; the memory budget
    is checked as they are decoded, so an oversized split stops early."""
    decoded: list[tuple[PurePosixPath, torch.Tensor]] = []
    seen: set[str] = set()
    first, total, skipped = "", 0, 0
    for below, where, data in files:
        seen.add(below.parts[0])
        try:
            image = np.array(open_image(io.BytesIO(data), where), dtype=np.uint8)
        except BadImageError:
            if not skip_bad:
                raise
            skipped += 1
            continue
        if decoded and image.shape[:2] != tuple(decoded[0][1].shape[1:]):
            raise ValueError(
                f"{where} is {image.shape[1]}x{image.shape[0]} pixels, but {first} is {decoded[0][1].shape[2]}x"
                f"{decoded[0][1].shape[1]}: the in-memory loader holds images of one size (CIFAR-style data); "
                "resize the images to one size first"
            )
        total += image.nbytes
        if budget_gb is not None and total > budget_gb * 2**30:
            where_to = "from a folder (extract the archive)" if source.is_file() else "(--data-mode stream)"
            raise ValueError(
                f"{source} {split}/: its first {len(decoded) + 1} images take {total / 2**30:.3g} GiB decoded, over "
                f"the memory budget of {budget_gb:g} GB (--memory-budget-gb); raise it or stream the images {where_to}"
            )
        first = first or where
        decoded.append((below, torch.from_numpy(image).permute(2, 0, 1)))
    if not seen:
        raise ValueError(f"{source} has no images under {split}/<class>/")
    if not decoded:
        raise ValueError(f"none of the {skipped} images of {source} {split}/ can be read")
    classes = tuple(sorted(seen))
    index = {name: i for i, name in enumerate(classes)}
    decoded.sort(key=lambda item: (item[0].parts[0], str(item[0])))
    labels = torch.tensor([index[below.parts[0]] for below, _ in decoded], dtype=torch.int64)
    images = torch.stack([image for _, image in decoded])
    return ImageTensors(images, labels, classes, skipped)


def load_image_folder(
    source: str | os.PathLike,
    split: str,
    cache_dir: str | os.PathLike | None = None,
    memory_budget_gb: float | None = None,
    skip_bad: bool = False,
) -> ImageTensors:
    """Load ``split`` (``"train"`` or ``"test"``) of an ImageFolder tree or its ``.tar.gz`` as tensors.

    With ``cache_dir`` the decoded tensors are saved there and reused, keyed by all they were made from.
    ``memory_budget_gb`` bounds the decoded images; ``skip_bad`` leaves out unreadable images and counts them.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no dataset at {source}: expected a folder with {split}/<class>/ or a .tar.gz of one")
    if source.is_dir():
        samples, classes = list_image_folder(source / split)
        stamps = file_stamps(path for path, _ in samples)
        key = cache_key("dataset", "folder", split, classes, stamps, [label for _, label in samples], skip_bad)
    else:
        key = cache_key("dataset", "archive", split, file_stamps([source]), skip_bad)
    entry = Path(cache_dir) / f"{key}.pt" if cache_dir is not None else None
    if entry is not None and read_entry(entry):
        try:
            saved = torch.load(entry, weights_only=True)
            return ImageTensors(saved["images"], saved["labels"], tuple(saved["classes"]), int(saved["skipped"]))
        except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError):
            pass  # an entry this version cannot read: decode again and replace it
    if source.is_dir():
        root = source / split
        files = ((Path(path).relative_to(root), path, Path(path).read_bytes()) for path, _ in samples)
    else:
        limit = None if memory_budget_gb is None else int(memory_budget_gb * 2**30)
        files = _archive_files(source, split, limit)
    result = _decode(files, source, split, memory_budget_gb, skip_bad)
    if entry is not None:
        saved = {"images": result.images, "labels": result.labels, "classes": list(result.classes),
                 "skipped": result.skipped}  # fmt: skip
        write_entry(entry, lambda path: torch.save(saved, path))
    return result


def load_torchvision_cifar10(root: str | os.PathLike, split: str, download: bool = False) -> ImageTensors:
    """``torchvision.datasets.CIFAR10`` (the original arrays; ``download=True`` fetches them) as tensors."""
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(str(root), train=split == "train", download=download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return ImageTensors(images, torch.tensor(dataset.targets, dtype=torch.int64), tuple(dataset.classes))


def load_dataset(
    source: str | os.PathLike,
    split: str,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    memory_budget_gb: float | None = None,
    skip_bad: bool = False,
) -> ImageTensors:
    """``torchvision:ROOT`` for torchvision's CIFAR10 under ROOT, else an ImageFolder folder or ``.tar.gz``."""
    text = str(source)
    if text.startswith("torchvision:"):
        return load_torchvision_cifar10(text.removeprefix("torchvision:") or ".", split, download=download)
    return load_image_folder(source, split, cache_dir=cache_dir, memory_budget_gb=memory_budget_gb, skip_bad=skip_bad)


def subset(data: ImageTensors, size: int, seed: int = 0) -> ImageTensors:
    """A random class-balanced subset of ``size`` images (``--subset`` for quick runs)."""
    if size >= len(data):
        return data
    chosen = split_validation(data, size, seed=seed)[1]
    return ImageTensors(chosen.images, chosen.labels, chosen.classes, data.skipped)


def balanced_split(
    labels: torch.Tensor, num_classes: int, size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(rest, chosen)``: ``size // num_classes`` random images of each class chosen, in index order."""
    generator = torch.Generator().manual_seed(seed)
    per_class = size // num_classes
    chosen = []
    for label in range(num_classes):
        members = (labels == label).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    picked = torch.cat(chosen)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[picked] = False
    return keep.nonzero().flatten(), picked.sort().values


def split_validation(data: ImageTensors, size: int, seed: int = 0) -> tuple[ImageTensors, ImageTensors]:
    """Carve a class-balanced validation split of ``size`` images out of ``data``; returns (train, validation), the
    images skipped as unreadable counted with train."""
    rest, chosen = balanced_split(data.labels, len(data.classes), size, seed=seed)
    return (ImageTensors(data.images[rest], data.labels[rest], data.classes, data.skipped),
            ImageTensors(data.images[chosen], data.labels[chosen], data.classes))  # fmt: skip


def _first_epoch_flips(index: torch.Tensor, seed: int) -> torch.Tensor:
    """Whether each image is flipped in epoch 0: a fair draw from the image's own epoch-0 seed."""
    return torch.tensor([draw_cifar_crop(0, 0.5, torch.Generator().manual_seed(sample_seed(seed, 0, i)))[2]
                         for i in index.tolist()])  # fmt: skip


def batches(
    data: ImageTensors,
    batch_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    train: bool = False,
    pad: int = 4,
    seed: int = 0,
    epoch: int = 0,
    channels_last: bool = True,
    drop_last: bool = False,
    indices: torch.Tensor | None = None,
    size: int | None = None,
    pad_mode: str = "constant",
    alternate_flip: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalized float batches; in training each image gets the CIFAR crop (``pad`` pixels of zero padding,
    a random crop, a random flip), drawn from its own seed ``(seed, epoch, index)`` as the streamed datasets draw
    it, and done on the whole batch at once.

    ``indices`` picks and orders the images (a distributed sampler's share); without it training shuffles all of
    them (from ``(seed, epoch)``). ``size`` resizes every batch (bilinear) to ``size`` x ``size``, e.g. to the input
    size of ImageNet weights. ``pad_mode="reflect"`` reflects the border instead of padding zeros; with
    ``alternate_flip`` each image is flipped in every other epoch (from a draw of epoch 0), as airbench flips, so
    every two epochs show each image both ways.
    """
    if indices is not None:
        order = torch.as_tensor(indices, dtype=torch.int64)
    elif train:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(sample_seed(seed, epoch, -1)))
    else:
        order = torch.arange(len(data))
    count = len(order)
    end = count - count % batch_size if drop_last else count
    for start in range(0, end, batch_size):
        index = order[start : start + batch_size]
        images, labels = data.images[index], data.labels[index]
        if train:
            # one small generator per image (a few microseconds): the draws do not depend on the batch it is in
            draws = [draw_cifar_crop(pad, 0.5, torch.Generator().manual_seed(sample_seed(seed, epoch, i)))
                     for i in index.tolist()]  # fmt: skip
            dy, dx, flip = (torch.tensor(column) for column in zip(*draws, strict=True))
            if alternate_flip:
                flip = _first_epoch_flips(index, seed) ^ bool(epoch % 2)
            images = pad_crop_flip(images, dy, dx, flip, pad, pad_mode)
        x = normalize(images, mean, std)
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, labels
