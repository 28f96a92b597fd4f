"""From ``--data`` to the loaders of a run: which kind of source it is, in memory or streamed, and the splits.

- ``torchvision:ROOT``: torchvision's CIFAR-10 arrays, in memory.
- a ``.tar.gz`` of an ImageFolder tree: decoded once into memory (CIFAR-style data of one image size).
- a folder with ``train/<class>/*`` (and ``val/`` or ``test/``): in memory when every image has one size and the
  split fits ``memory_budget_gb`` (CIFAR), else streamed through DataLoader workers (``mode`` forces either).
- a folder with ``train/*.tar`` (and ``val/*.tar`` or ``test/*.tar``): tar shards in the webdataset layout, streamed.
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

__all__ = ["DataOptions", "Splits", "open_eval_split", "open_splits", "source_kind"]

MODES = ("auto", "memory", "stream")


@dataclass(frozen=True)
class DataOptions:
    """How to read ``source``; see the module docstring for the kinds of source."""

    source: str
    mode: str = "auto"
    memory_budget_gb: float = 4.0
    workers: int = 0
    cache_dir: str | None = None
    download: bool = False
    subset: int | None = None
    val_size: int = 0
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


def _held_out(root: Path, shards: bool = False) -> Path | None:
    """The split a run evaluates once at the end: ``test/``, else ``val/`` (holding tar shards, with ``shards``)."""
    folders = (root / name for name in ("test", "val"))
    return next((p for p in folders if p.is_dir() and (not shards or find_shards(p))), None)


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
    """Open the training split and the validation (``val_size`` carved out of train/) and test splits.

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
            if held_out is not None:
                _check_classes(classes, list_image_folder(held_out)[1], held_out)
            notes.append(f"in memory: every image has one size and the split fits {options.memory_budget_gb} GB")
            split = held_out.name if held_out is not None else "test"
            return _in_memory(options, model, batch_size, size, rank, world_size, channels_last, barrier, notes,
                              split=split, augment=augment_train)  # fmt: skip
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
    options, model, batch_size, size, rank, world_size, channels_last, barrier, notes, split, augment
) -> Splits:
    cfg = model.pretrained_cfg
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    train = test = None
    read = {"cache_dir": options.cache_dir, "download": options.download, "skip_bad": options.skip_bad,
            "memory_budget_gb": options.memory_budget_gb}  # fmt: skip
    for turn in (True, False):  # rank 0 decodes and caches first; the other ranks then read its cache
        if (rank == 0) == turn:
            train = load_dataset(options.source, "train", **read)
            if options.eval_test:
                test = load_dataset(options.source, split, **read)
        barrier()
    if test is not None:
        _check_classes(train.classes, test.classes, f"{options.source} {split}/")
    if options.subset:
        train = subset(train, options.subset, seed=options.seed)
        test = subset(test, options.subset, seed=options.seed) if test is not None else None
    val = None
    if options.val_size:
        if options.val_size >= len(train):
            raise ValueError(f"--val-size {options.val_size} leaves no training images (only {len(train)} in train/)")
        train, val = split_validation(train, options.val_size, seed=options.seed)

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
    )


def _streamed_folder(
    options, model, batch_size, size, rank, world_size, channels_last, pin_memory, samples, classes, notes, augment
) -> Splits:
    root = Path(options.source)
    labels = torch.tensor([label for _, label in samples])
    if options.subset and options.subset < len(samples):
        chosen = balanced_split(labels, len(classes), options.subset, seed=options.seed)[1]
        samples = [samples[i] for i in chosen.tolist()]
        labels = labels[chosen]
    val_samples = None
    if options.val_size:
        if options.val_size >= len(samples):
            raise ValueError(f"--val-size {options.val_size} leaves no training images (only {len(samples)} in train/)")
        rest, chosen = balanced_split(labels, len(classes), options.val_size, seed=options.seed)
        val_samples = [samples[i] for i in chosen.tolist()]
        samples = [samples[i] for i in rest.tolist()]
    test_samples = None
    held_out = _held_out(root)
    if options.eval_test:
        if held_out is None:
            raise FileNotFoundError(f"--eval-test needs {root}/test/<class>/ or {root}/val/<class>/")
        test_samples, test_classes = list_image_folder(held_out)
        _check_classes(classes, test_classes, held_out)
        if options.subset and options.subset < len(test_samples):
            chosen = balanced_split(torch.tensor([y for _, y in test_samples]), len(classes), options.subset,
                                    seed=options.seed)[1]  # fmt: skip
            test_samples = [test_samples[i] for i in chosen.tolist()]
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
    if held_index is not None:
        # shards are not carved: the held-out shards validate every epoch when --val-size asks for validation
        if options.val_size:
            val = loader(held_index, False, 2 * batch_size)
            notes.append(f"validation each epoch on {held_out} (shards are not carved; --val-size only turns it on)")
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
