"""CIFAR-10 as decoded tensors in memory, with augmentation applied to whole batches.

The images are read once from an ImageFolder layout (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), either a
folder or a ``.tar.gz`` of one, decoded to ``uint8`` tensors and cached as a ``.pt`` file (read back with
``weights_only=True``). Training then never touches PIL: crops and flips are done on batches, which keeps two
CPU cores busy with the model instead of with image decoding.
"""

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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
    """A split held in memory: ``images`` is ``uint8`` ``(N, 3, H, W)``, ``labels`` is ``int64`` ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def _members(source: Path, split: str) -> Iterator[tuple[str, str, bytes]]:
    """``(class name, where the file is, file bytes)`` for every image of ``split``, from a folder (listed as the
    streamed path lists it, so both hold the images in one order) or a tar archive."""
    if source.is_dir():
        samples, classes = list_image_folder(source / split)
        for path, label in samples:
            yield classes[label], path, Path(path).read_bytes()
        return
    with tarfile.open(source) as archive:
        for member in archive:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-3] == split:
                yield parts[-2], f"{source}:{member.name}", archive.extractfile(member).read()


def load_image_folder(
    source: str | os.PathLike, split: str, cache_dir: str | os.PathLike | None = None
) -> ImageTensors:
    """Load ``split`` (``"train"`` or ``"test"``) of an ImageFolder tree or its ``.tar.gz`` as tensors.

    With ``cache_dir`` the decoded tensors are saved there and reused (keyed by the source's name, size and time).
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no dataset at {source}: expected a folder with {split}/<class>/ or a .tar.gz of one")
    cache = None
    if cache_dir is not None:
        stat = source.stat()
        cache = Path(cache_dir) / f"{source.name}-{split}-{stat.st_size}-{int(stat.st_mtime)}.pt"
        if cache.is_file():
            saved = torch.load(cache, weights_only=True)
            return ImageTensors(saved["images"], saved["labels"], tuple(saved["classes"]))
    pixels, names = [], []
    first = ""
    for class_name, where, data in _members(source, split):
        image = np.asarray(open_image(io.BytesIO(data), where), dtype=np.uint8)
        if pixels and image.shape != pixels[0].shape:
            raise ValueError(
                f"{where} is {image.shape[1]}x{image.shape[0]} pixels, but {first} is "
                f"{pixels[0].shape[1]}x{pixels[0].shape[0]}: the in-memory loader holds images of one size "
                "(CIFAR-style data); resize the images to one size first"
            )
        first = first or where
        pixels.append(image)
        names.append(class_name)
    if not pixels:
        raise ValueError(f"{source} has no images under {split}/<class>/")
    classes = tuple(sorted(set(names)))
    index = {name: i for i, name in enumerate(classes)}
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([index[name] for name in names], dtype=torch.int64)
    result = ImageTensors(images, labels, classes)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"images": images, "labels": labels, "classes": list(classes)}, partial)
        os.replace(partial, cache)  # atomic: readers never see half a file
    return result


def load_torchvision_cifar10(root: str | os.PathLike, split: str, download: bool = False) -> ImageTensors:
    """``torchvision.datasets.CIFAR10`` (the original arrays; ``download=True`` fetches them) as tensors."""
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(str(root), train=split == "train", download=download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return ImageTensors(images, torch.tensor(dataset.targets, dtype=torch.int64), tuple(dataset.classes))


def load_dataset(
    source: str | os.PathLike, split: str, cache_dir: str | os.PathLike | None = None, download: bool = False
) -> ImageTensors:
    """``torchvision:ROOT`` for torchvision's CIFAR10 under ROOT, else an ImageFolder folder or ``.tar.gz``."""
    text = str(source)
    if text.startswith("torchvision:"):
        return load_torchvision_cifar10(text.removeprefix("torchvision:") or ".", split, download=download)
    return load_image_folder(source, split, cache_dir=cache_dir)


def subset(data: ImageTensors, size: int, seed: int = 0) -> ImageTensors:
    """A random class-balanced subset of ``size`` images (``--subset`` for quick runs)."""
    if size >= len(data):
        return data
    return split_validation(data, size, seed=seed)[1]


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
    """Carve a class-balanced validation split of ``size`` images out of ``data``; returns (train, validation)."""
    rest, chosen = balanced_split(data.labels, len(data.classes), size, seed=seed)
    pick = lambda idx: ImageTensors(data.images[idx], data.labels[idx], data.classes)  # noqa: E731
    return pick(rest), pick(chosen)


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
