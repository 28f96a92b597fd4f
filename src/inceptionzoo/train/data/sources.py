"""From ``--data`` to the loaders of a run: which kind of source it is, in memory or streamed, and the splits.

- ``torchvision:ROOT``: torchvision's CIFAR-10 arrays, in memory.
- a ``.tar.gz`` of an ImageFolder tree: decoded once into memory (CIFAR-style data of one image size).
- a folder with ``train/<class>/*`` (and ``val/`` or ``test/``): in memory when every image has one size and the
  split fits ``memory_budget_gb`` (CIFAR), else streamed through DataLoader workers (``mode`` forces either).
- a folder with ``train/*.tar`` (and ``val/*.tar`` or ``test/*.tar``): tar shards in the webdataset layout, streamed.

Validation each epoch, by default (``val_size=None``), follows the data: a folder's ``val/`` (or ``validation/``)
when it has one; else a class-balanced split of about 10% carved out of train/ (``auto_val_size``: at most 5,000, at
least one image a class, none when a class has fewer than 5 images); tar shards are never carved. ``val_size=N``
carves N images out of train/ instead, ``0`` validates nothing. ``test/`` (else ``val/``) is the split
``eval_test`` evaluates once at the end.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .folder import DECODE_ERRORS, ImageFileDataset, list_image_folder
from .in_memory import ImageTensors, balanced_split, load_dataset, split_validation, subset
from .loaders import StreamLoader, TensorLoader
from .shards import ShardIndex, TarShardDataset, find_shards, index_shards
from .transforms import Augmentation, eval_transform, train_transform

__all__ = ["DataOptions", "Splits", "auto_val_size", "open_eval_split", "open_splits", "source_kind"]

MODES = ("auto", "memory", "stream")
VAL_FOLDERS = ("val", "validation")
# the carved validation split by default: about 1/AUTO_VAL_SHARE of train/, at most AUTO_VAL_MAX images, and at most
# 1/AUTO_VAL_CLASS_SHARE of the smallest class (none when a class has fewer than AUTO_VAL_CLASS_SHARE images)
AUTO_VAL_SHARE, AUTO_VAL_MAX, AUTO_VAL_CLASS_SHARE = 10, 5000, 5


@dataclass(frozen=True)
class DataOptions:
    """How to read ``source``; see the module docstring for the kinds of source. ``val_size=None`` validates as the
    data suggests (the module docstring), ``0`` not at all, ``N`` on N images carved out of train/."""

    source: str
    mode: str = "auto"
    memory_budget_gb: float = 4.0
    workers: int = 0
    cache_dir: str | None = None
    download: bool = False
    subset: int | None = None
    val_size: int | None = 0
    eval_test: bool = False
    seed: int = 0
    skip_bad: bool = False
    augmentation: Augmentation = field(default_factory=Augmentation)


@dataclass
class Splits:
    """The loaders of a run; ``kind`` is ``memory``, ``folder`` or ``shards``."""

    train: TensorLoader | StreamLoader
    val: TensorLoader | StreamLoader | None
    test: TensorLoader | StreamLoader | None
    classes: tuple[str, ...]
    kind: str
    train_images: int
    notes: list[str] = field(default_factory=list)
    val_source: str | None = None  # where the validation images come from, e.g. "ds/val" or "carved from ds/train"
    val_images: int = 0


def _held_out(root: Path, shards: bool = False) -> Path | None:
    """The split a run evaluates once at the end: ``test/``, else ``val/`` or ``validation/`` (holding tar shards,
    with ``shards``)."""
    folders = (root / name for name in ("test", *VAL_FOLDERS))
    return next((p for p in folders if p.is_dir() and (not shards or find_shards(p))), None)


def _val_folder(root: Path, shards: bool = False) -> Path | None:
    """The folder that validates each epoch by default: ``val/``, else ``validation/`` (with tar shards)."""
    folders = (root / name for name in VAL_FOLDERS)
    return next((p for p in folders if p.is_dir() and (not shards or find_shards(p))), None)


def auto_val_size(labels: torch.Tensor, num_classes: int) -> int:
    """The size of the validation split carved out of a training split by default: about 10% of it, the same number
    of images from each class (at least one, at most a fifth of the smallest class), at most 5,000 in all; 0 when a
    class has fewer than 5 images (too small to spare any)."""
    if num_classes == 0 or len(labels) == 0:
        return 0
    smallest = int(torch.bincount(labels, minlength=num_classes).min())
    per_class = max(1, min(AUTO_VAL_MAX, round(len(labels) / AUTO_VAL_SHARE)) // num_classes)
    return min(per_class, smallest // AUTO_VAL_CLASS_SHARE) * num_classes


def _carved_size(options: DataOptions, labels: torch.Tensor, num_classes: int, notes: list[str]) -> int:
    """How many images to carve out of train/ for validation: ``--val-size``, else ``auto_val_size`` (with a note)."""
    if options.val_size is not None:
        if options.val_size and options.val_size >= len(labels):
            raise ValueError(f"--val-size {options.val_size} leaves no training images (only {len(labels)} in "
                             "train/); pass a smaller --val-size, or 0 for no validation")  # fmt: skip
        return options.val_size
    size = auto_val_size(labels, num_classes)
    if size:
        notes.append(f"validation each epoch on {size:,} of the {len(labels):,} images of train/, carved out "
                     "class-balanced (no val/ folder; --val-size N to choose another number, 0 for none)")  # fmt: skip
    else:
        notes.append(f"no validation: train/ ({len(labels):,} images) is too small to carve a validation split out "
                     "of (a class has fewer than 5 images); add a val/ folder, or pass --val-size N")  # fmt: skip
    return size


def source_kind(source: str) -> str:
    """``torchvision``, ``archive``, ``folder`` or ``shards``; errors say what a source must look like."""
    if source.startswith("torchvision:"):
        return "torchvision"
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"no dataset at {path}: expected a folder with train/<class>/ (and val/ or test/), a folder of tar "
            "shards under train/, a .tar.gz of an ImageFolder tree, or torchvision:ROOT"
        )
    if path.is_file():
        return "archive"
    train = path / "train"
    if not train.is_dir():
        raise FileNotFoundError(f"{path} has no train/ folder: expected {path}/train/<class>/<images> or train/*.tar")
    return "shards" if find_shards(train) else "folder"


def _image_size(path: str) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except DECODE_ERRORS:  # decompression bombs too
        return None  # unreadable: the streaming path names it, or skips and counts it


def _fits_in_memory(samples: list[tuple[str, int]], budget_gb: float) -> bool:
    """True when every image has one size and the split fits ``budget_gb`` as ``uint8``: 64 images spread over the
    split are probed first (a folder of photos differs there already), then every header is read."""
    width_height = _image_size(samples[0][0])
    if width_height is None or len(samples) * 3 * width_height[0] * width_height[1] > budget_gb * 2**30:
        return False
    step = max(1, len(samples) // 64)
    probed = samples[::step]
    rest = (sample for index, sample in enumerate(samples) if index % step)  # the headers not probed yet
    return all(_image_size(path) == width_height for path, _ in probed) and all(
        _image_size(path) == width_height for path, _ in rest
    )


def _check_classes(train: tuple[str, ...], other: tuple[str, ...], where: Path | str) -> None:
    if tuple(train) != tuple(other):
        missing = sorted(set(train) - set(other))
        extra = sorted(set(other) - set(train))
        raise ValueError(
            f"the classes of {where} differ from train/'s: missing {missing or 'none'}, not in train/ "
            f"{extra or 'none'}; both splits need the same class folders"
        )


def open_splits(
    options: DataOptions,
    model: nn.Module,
    batch_size: int,
    size: int,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = True,
    pin_memory: bool = False,
    barrier: Callable[[], None] = lambda: None,
    augment_train: bool = True,
) -> Splits:
    """Open the training split, the validation split (see the module docstring) and the test split.

    ``augment_train=False`` reads the training split like an evaluation split (every image once, the weights'
    preprocessing), for features computed once by a frozen backbone.
    """
    if options.mode not in MODES:
        raise ValueError(f"the data mode must be one of {', '.join(MODES)}, got {options.mode!r}")
    kind = source_kind(options.source)
    root = Path(options.source)
    notes: list[str] = []
    if kind == "folder":
        samples, classes = list_image_folder(root / "train")
        # with --skip-bad-images auto streams: an image that fails only when decoded is then skipped every epoch
        in_memory = options.mode == "memory" or (
            options.mode == "auto" and not options.skip_bad and _fits_in_memory(samples, options.memory_budget_gb)
        )
        if in_memory:
            held_out = _held_out(root)
            val_folder = _val_folder(root) if options.val_size is None else None
            for folder in {held_out, val_folder} - {None}:
                _check_classes(classes, list_image_folder(folder)[1], folder)
            notes.append(f"in memory: every image has one size and the split fits {options.memory_budget_gb} GB")
            split = held_out.name if held_out is not None else "test"
            return _in_memory(options, model, batch_size, size, rank, world_size, channels_last, barrier, notes,
                              split=split, augment=augment_train,
                              val_split=val_folder.name if val_folder is not None else None)  # fmt: skip
        return _streamed_folder(options, model, batch_size, size, rank, world_size, channels_last, pin_memory,
                                samples, classes, notes, augment=augment_train)  # fmt: skip
    if kind == "shards":
        if options.mode == "memory":
            raise ValueError("tar shards are streamed; --data-mode memory is for folders, archives and torchvision:")
        return _shards(options, model, batch_size, size, rank, world_size, channels_last, pin_memory, notes,
                       augment=augment_train)  # fmt: skip
    if options.mode == "stream":
        raise ValueError(f"{options.source} is read into memory; to stream it, extract it into a folder first")
    return _in_memory(options, model, batch_size, size, rank, world_size, channels_last, barrier, notes, split="test",
                      augment=augment_train)  # fmt: skip


def _in_memory(
    options, model, batch_size, size, rank, world_size, channels_last, barrier, notes, split, augment, val_split=None
) -> Splits:
    """``val_split``: a folder of the source (``val``) that validates each epoch, instead of a carved split."""
    cfg = model.pretrained_cfg
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    train = test = val = None
    read = {"cache_dir": options.cache_dir, "download": options.download, "skip_bad": options.skip_bad,
            "memory_budget_gb": options.memory_budget_gb}  # fmt: skip
    for turn in (True, False):  # rank 0 decodes and caches first; the other ranks then read its cache
        if (rank == 0) == turn:
            train = load_dataset(options.source, "train", **read)
            if options.eval_test:
                test = load_dataset(options.source, split, **read)
            if val_split is not None:
                val = load_dataset(options.source, val_split, **read)
        barrier()
    if test is not None:
        _check_classes(train.classes, test.classes, f"{options.source} {split}/")
    if options.subset:
        train = subset(train, options.subset, seed=options.seed)
        test = subset(test, options.subset, seed=options.seed) if test is not None else None
        val = subset(val, options.subset, seed=options.seed) if val is not None else None
    val_source = None
    if val is not None:
        val_source = str(Path(options.source) / val_split)
        notes.append(f"validation each epoch on {val_source}/ ({len(val):,} images; --val-size N carves N out of "
                     "train/ instead, 0 for none)")  # fmt: skip
    else:
        carved = _carved_size(options, train.labels, len(train.classes), notes)
        if carved:
            train, val = split_validation(train, carved, seed=options.seed)
            val_source = f"carved from {options.source} train/"

    def loader(data: ImageTensors | None, is_train: bool, batch: int) -> TensorLoader | None:
        if data is None:
            return None
        return TensorLoader(data, batch, mean, std, train=is_train, size=size, channels_last=channels_last,
                            rank=rank, world_size=world_size, seed=options.seed,
                            augmentation=options.augmentation)  # fmt: skip

    return Splits(
        train=loader(train, augment, batch_size),
        val=loader(val, False, 2 * batch_size),
        test=loader(test, False, 2 * batch_size),
        classes=train.classes,
        kind="memory",
        train_images=len(train),
        notes=notes,
        val_source=val_source,
        val_images=len(val) if val is not None else 0,
    )


def _held_out_samples(folder: Path, classes: tuple[str, ...], options: DataOptions) -> list[tuple[str, int]]:
    """A held-out folder's images (validation or test), its classes checked against train/'s, and with ``--subset``
    a class-balanced share of them."""
    samples, found = list_image_folder(folder)
    _check_classes(classes, found, folder)
    if options.subset and options.subset < len(samples):
        labels = torch.tensor([y for _, y in samples])
        chosen = balanced_split(labels, len(classes), options.subset, seed=options.seed)[1]
        samples = [samples[i] for i in chosen.tolist()]
    return samples


def _streamed_folder(
    options, model, batch_size, size, rank, world_size, channels_last, pin_memory, samples, classes, notes, augment
) -> Splits:
    root = Path(options.source)
    labels = torch.tensor([label for _, label in samples])
    if options.subset and options.subset < len(samples):
        chosen = balanced_split(labels, len(classes), options.subset, seed=options.seed)[1]
        samples = [samples[i] for i in chosen.tolist()]
        labels = labels[chosen]
    val_samples, val_source = None, None
    val_folder = _val_folder(root) if options.val_size is None else None
    if val_folder is not None:
        val_samples = _held_out_samples(val_folder, classes, options)
        val_source = str(val_folder)
        notes.append(f"validation each epoch on {val_folder}/ ({len(val_samples):,} images; --val-size N carves N "
                     "out of train/ instead, 0 for none)")  # fmt: skip
    else:
        carved = _carved_size(options, labels, len(classes), notes)
        if carved:
            rest, chosen = balanced_split(labels, len(classes), carved, seed=options.seed)
            val_samples = [samples[i] for i in chosen.tolist()]
            samples = [samples[i] for i in rest.tolist()]
            val_source = f"carved from {root / 'train'}"
    test_samples = None
    held_out = _held_out(root)
    if options.eval_test:
        if held_out is None:
            raise FileNotFoundError(f"--eval-test needs {root}/test/<class>/ or {root}/val/<class>/")
        test_samples = _held_out_samples(held_out, classes, options)
    evaluate = eval_transform(model, size)

    def loader(items: list | None, is_train: bool, batch: int) -> StreamLoader | None:
        if items is None:
            return None
        transform = train_transform(model, size, options.augmentation) if is_train else evaluate
        dataset = ImageFileDataset(items, classes, transform, seed=options.seed, skip_bad=options.skip_bad)
        return StreamLoader(dataset, batch, train=is_train, workers=options.workers, channels_last=channels_last,
                            rank=rank, world_size=world_size, seed=options.seed, pin_memory=pin_memory)  # fmt: skip

    notes.append(f"streamed from {root} with {options.workers} DataLoader worker(s) per process")
    return Splits(
        train=loader(samples, augment, batch_size),
        val=loader(val_samples, False, 2 * batch_size),
        test=loader(test_samples, False, 2 * batch_size),
        classes=classes,
        kind="folder",
        train_images=len(samples),
        notes=notes,
        val_source=val_source,
        val_images=len(val_samples) if val_samples is not None else 0,
    )


def _shards(options, model, batch_size, size, rank, world_size, channels_last, pin_memory, notes, augment) -> Splits:
    root = Path(options.source)
    train_index = index_shards(root / "train", cache_dir=options.cache_dir, skip_bad=options.skip_bad)
    held_out = _held_out(root, shards=True)
    held_index = None
    if held_out is not None:
        held_index = index_shards(held_out, cache_dir=options.cache_dir, skip_bad=options.skip_bad)
    for index in (train_index, held_index):
        if index is not None and index.skipped_shards:
            notes.append(f"{len(index.skipped_shards)} shard(s) cut short or unreadable left out (--skip-bad-images): "
                         f"{', '.join(index.skipped_shards)}")  # fmt: skip
    if held_index is not None and len(held_index.classes) > len(train_index.classes):
        raise ValueError(f"{held_out} has class indices up to {len(held_index.classes) - 1}, but train/ only "
                         f"{len(train_index.classes) - 1}")  # fmt: skip
    if options.subset:
        raise ValueError("--subset picks images of a folder; with tar shards, point --data at fewer shards instead")

    def loader(index: ShardIndex, is_train: bool, batch: int) -> StreamLoader:
        transform = train_transform(model, size, options.augmentation) if is_train else eval_transform(model, size)
        dataset = TarShardDataset(index, transform, rank=rank, world_size=world_size, shuffle=is_train,
                                  seed=options.seed, skip_bad=options.skip_bad, chunk=min(batch, 32))  # fmt: skip
        return StreamLoader(dataset, batch, train=is_train, workers=options.workers, channels_last=channels_last,
                            rank=rank, world_size=world_size, seed=options.seed, pin_memory=pin_memory)  # fmt: skip

    val = test = None
    val_source, val_images = None, 0
    # shards are not carved: by default val/ (or validation/) shards validate every epoch; --val-size N validates on
    # the held-out shards (test/, else val/), 0 on none
    val_folder = _val_folder(root, shards=True) if options.val_size is None else held_out if options.val_size else None
    if val_folder is not None:
        val_index = held_index if val_folder == held_out else index_shards(val_folder, cache_dir=options.cache_dir,
                                                                           skip_bad=options.skip_bad)  # fmt: skip
        val = loader(val_index, False, 2 * batch_size)
        val_source, val_images = str(val_folder), len(val_index)
        notes.append(f"validation each epoch on {val_folder}/ (shards are not carved; --val-size 0 for none)")
    elif options.val_size is None:
        notes.append(f"no validation: no tar shards in {root}/val/ (shards are not carved out of train/)")
    if held_index is not None:
        if options.eval_test:
            test = loader(held_index, False, 2 * batch_size)
    elif options.eval_test:
        raise FileNotFoundError(f"--eval-test needs tar shards in {root}/val/ or {root}/test/")
    train_loader = loader(train_index, augment, batch_size)
    lost = len(train_index) - len(train_loader) * batch_size * world_size if augment else 0
    notes.append(
        f"{len(train_index.shards)} shard(s) streamed with {options.workers} worker(s) per process; "
        f"{lost} of {len(train_index)} images ({100 * lost / len(train_index):.1f}%) fall outside the equal steps "
        f"of the {world_size} process(es) each epoch"
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"batch size {batch_size} is larger than the {min(train_index.rank_counts(world_size))} images of the "
            "process with the fewest; lower --batch-size or balance the shards"
        )
    return Splits(
        train=train_loader,
        val=val,
        test=test,
        classes=train_index.classes,
        kind="shards",
        train_images=math.prod((len(train_loader), batch_size, world_size)) if augment else len(train_index),
        notes=notes,
        val_source=val_source,
        val_images=val_images,
    )


def open_eval_split(
    source: str,
    model: nn.Module,
    batch_size: int,
    size: int,
    split: str | None = None,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = True,
    cache_dir: str | None = None,
    skip_bad: bool = False,
    subset_size: int | None = None,
    seed: int = 0,
) -> tuple[TensorLoader | StreamLoader, tuple[str, ...], str]:
    """``(loader, classes, split folder)`` of one split for evaluation: every image once across the ranks, with the
    weights' preprocessing (folders and shards); ``split`` defaults to ``val``, else ``test``."""
    root = Path(source)
    if source.startswith("torchvision:") or root.is_file():
        split = split or "test"
        data = load_dataset(source, split, cache_dir=cache_dir, skip_bad=skip_bad)
        if subset_size:
            data = subset(data, subset_size, seed=seed)
        cfg = model.pretrained_cfg
        loader = TensorLoader(data, batch_size, tuple(cfg["mean"]), tuple(cfg["std"]), size=size,
                              channels_last=channels_last, rank=rank, world_size=world_size)  # fmt: skip
        return loader, data.classes, f"{source} {split}/"
    if not root.is_dir():
        raise FileNotFoundError(
            f"no dataset at {root}: expected a folder with val/<class>/ or test/<class>/ (or the class folders "
            "themselves), tar shards, a .tar.gz of an ImageFolder tree, or torchvision:ROOT"
        )
    if split is None:  # val/, else test/, else the folder itself holds the class folders or shards
        split = next((name for name in ("val", "test") if (root / name).is_dir()), "")
    folder = root / split if split else root
    if not folder.is_dir():
        raise FileNotFoundError(f"no {split}/ split in {root}")
    if find_shards(folder):
        index = index_shards(folder, cache_dir=cache_dir, skip_bad=skip_bad)
        dataset = TarShardDataset(index, eval_transform(model, size), rank=rank, world_size=world_size,
                                  skip_bad=skip_bad, chunk=min(batch_size, 32))  # fmt: skip
        classes = index.classes
    else:
        samples, classes = list_image_folder(folder)
        if subset_size and subset_size < len(samples):
            chosen = balanced_split(torch.tensor([y for _, y in samples]), len(classes), subset_size, seed=seed)[1]
            samples = [samples[i] for i in chosen.tolist()]
        dataset = ImageFileDataset(samples, classes, eval_transform(model, size), skip_bad=skip_bad)
    loader = StreamLoader(dataset, batch_size, workers=workers, channels_last=channels_last, rank=rank,
                          world_size=world_size)  # fmt: skip
    return loader, classes, str(folder)
