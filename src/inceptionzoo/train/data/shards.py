"""Images streamed from tar shards in the webdataset layout: each shard holds ``{key}.jpg`` (or .png, .webp, ...)
and ``{key}.cls`` (the class index as text) per sample; a ``classes.txt`` beside the shards may name the classes.

Written by hand, not with the ``webdataset`` package (not a dependency) or timm's ``wds`` reader (which needs it):
the reader is one sequential pass per shard with Python's ``tarfile``. Shards are dealt to ranks (shard ``j`` to
rank ``j % world``, fixed, so every rank knows every rank's sample count) and, in a new order each epoch, to the
DataLoader workers of a rank; each image belongs to exactly one rank and worker. Every rank runs the same number of
steps, ``min over ranks of (its images // batch)``, so DDP never waits on a rank that ran out.

The labels are class indices: ``classes.txt`` (one name a line) says how many classes there are; without it the
classes are ``0`` to the largest label. A shard must end with tar's end-of-archive marker: ``tarfile`` takes a
missing or cut header for the end, which would train on the first part of a cut shard without a word.
"""

import io
import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ...images import read_tar
from .cache import cache_key, file_stamps, read_entry, write_entry
from .folder import BadImageError, _SeededDraws, open_image, sample_seed

__all__ = ["ShardError", "ShardIndex", "TarShardDataset", "find_shards", "index_shards", "shard_steps"]

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp", "tif", "tiff", "gif")


class ShardError(ValueError):
    """A tar shard that is cut short, unreadable, or has a sample without an image or a class."""


def find_shards(folder: str | os.PathLike) -> list[Path]:
    """The shard files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SHARD_SUFFIXES))


def _split_key(name: str) -> tuple[str, str]:
    """``("dir/key", "jpg")`` for ``dir/key.jpg``: the key ends at the first dot of the file name (webdataset's)."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def _samples(path: Path) -> Iterator[tuple[str, bytes, int]]:
    """``(key, image bytes, label)`` in shard order, in one sequential pass; errors name the shard and sample."""
    current, parts = None, {}

    def finish() -> tuple[str, bytes, int]:
        image = next((parts[k] for k in IMAGE_KEYS if k in parts), None)
        if image is None or "cls" not in parts:
            missing = "image" if image is None else ".cls label"
            raise ShardError(f"{path}: sample {current!r} has no {missing} (members: {', '.join(sorted(parts))})")
        text = parts["cls"].decode("ascii", "replace").strip()
        if not (text.isascii() and text.isdigit()):  # int() would take -1, +3 and 1_0
            raise ShardError(
                f"{path}: sample {current!r} has {parts['cls'][:20]!r} in its .cls, not a class index (0, 1, 2, ...)"
            )
        return current, image, int(text)

    for member, data in read_tar(path, error=ShardError):
        key, extension = _split_key(member.name)
        if key != current:
            if current is not None:
                yield finish()
            current, parts = key, {}
        parts[extension] = data
    if current is not None:
        yield finish()


@dataclass(frozen=True)
class ShardIndex:
    """What a split of shards holds: the shard files, images per shard and the class names; ``skipped_shards``
    are the shards left out as unreadable (cut short) with ``skip_bad``."""

    shards: tuple[str, ...]
    counts: tuple[int, ...]
    classes: tuple[str, ...]
    skipped_shards: tuple[str, ...] = ()

    def __len__(self) -> int:
        return sum(self.counts)

    def rank_counts(self, world_size: int) -> list[int]:
        return [sum(self.counts[rank::world_size]) for rank in range(world_size)]


def _classes(labels: dict[int, tuple[Path, str]], names_file: Path | None, names: str | None) -> tuple[str, ...]:
    """The class names: ``classes.txt``'s lines, else ``0`` to the largest label. ``labels`` maps each label to the
    first shard and sample holding it; a label beyond the classes is an error naming them."""
    top = max(labels)
    shard, key = labels[top]
    if names_file is not None:
        classes = tuple(line.strip() for line in names.splitlines() if line.strip())
        if top >= len(classes):
            raise ShardError(f"{shard}: sample {key!r} has class index {top}, but {names_file} names {len(classes)} "
                             f"classes (indices 0 to {len(classes) - 1})")  # fmt: skip
        return classes
    # no classes.txt: a label far beyond those present is a mistake, not that many classes (each one a classifier row)
    if top >= 10 * len(labels) + 1000:
        raise ShardError(
            f"{shard}: sample {key!r} has class index {top}, but the shards hold only {len(labels)} distinct labels; "
            f"if there are {top + 1} or more classes, write them to a classes.txt (one name a line) beside the shards"
        )
    return tuple(str(i) for i in range(top + 1))


def index_shards(
    folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None, skip_bad: bool = False
) -> ShardIndex:
    """Count each shard's samples, check the labels and find the classes, in one pass over the shards; cached by
    every shard's path, size and time and by classes.txt. ``skip_bad`` leaves out (and lists) shards cut short."""
    folder = Path(folder)
    shards = find_shards(folder)
    if not shards:
        raise FileNotFoundError(f"no tar shards ({', '.join(SHARD_SUFFIXES)}) in {folder}")
    names_file = next((p / "classes.txt" for p in (folder, folder.parent) if (p / "classes.txt").is_file()), None)
    names = names_file.read_text() if names_file is not None else None
    entry = None
    if cache_dir is not None:
        key = cache_key("shards", file_stamps(shards), str(names_file), names, skip_bad)
        entry = Path(cache_dir) / f"{key}.json"
        if read_entry(entry):
            saved = json.loads(entry.read_text())
            return ShardIndex(*(tuple(saved[name]) for name in ("shards", "counts", "classes", "skipped_shards")))
    kept, counts, skipped = [], [], []
    labels: dict[int, tuple[Path, str]] = {}
    for shard in shards:
        try:
            samples = [(key, label) for key, _, label in _samples(shard)]
        except ShardError:
            if not skip_bad:
                raise
            skipped.append(str(shard))
            continue
        if not samples:
            raise ShardError(f"{shard} holds no samples")
        for key, label in samples:
            labels.setdefault(label, (shard, key))
        kept.append(str(shard))
        counts.append(len(samples))
    if not kept:
        raise ShardError(f"none of the {len(shards)} shards in {folder} can be read to the end")
    index = ShardIndex(tuple(kept), tuple(counts), _classes(labels, names_file, names), tuple(skipped))
    if entry is not None:
        saved = {"shards": kept, "counts": counts, "classes": list(index.classes), "skipped_shards": skipped}
        write_entry(entry, lambda path: path.write_text(json.dumps(saved)))
    return index


class TarShardDataset(torch.utils.data.IterableDataset):
    """Stream ``(images, labels, skipped)`` chunks of up to ``chunk`` images from this rank's shards.

    Training (``shuffle``) visits the rank's shards in a new order each epoch, split among the DataLoader workers,
    and mixes samples within a ``buffer`` of images; each image's augmentation is drawn from its place in the
    dataset and the epoch, as for folders.
    """

    def __init__(
        self,
        index: ShardIndex,
        transform: Callable[[Image.Image], torch.Tensor],
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        skip_bad: bool = False,
        chunk: int = 16,
        buffer: int = 1000,
    ) -> None:
        if len(index.shards) < world_size:
            raise ValueError(
                f"{len(index.shards)} shard(s) cannot be shared by {world_size} processes: write at least one "
                "shard per process (better, several per DataLoader worker)"
            )
        self.index = index
        self.transform = transform
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.skip_bad = shuffle, seed, skip_bad
        self.chunk, self.buffer = chunk, buffer
        self.offsets = [sum(index.counts[:j]) for j in range(len(index.counts))]
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return self.index.rank_counts(self.world_size)[self.rank]

    def worker_shards(self, epoch: int, worker: int, workers: int) -> list[int]:
        """The shard numbers that ``worker`` of this rank reads in ``epoch``."""
        mine = list(range(self.rank, len(self.index.shards), self.world_size))
        if self.shuffle:
            random.Random(self.seed * 7_919 + epoch).shuffle(mine)
        return mine[worker::workers]

    def _images(self, epoch: int, shard: int) -> Iterator[tuple[torch.Tensor | None, int]]:
        path = self.index.shards[shard]
        for position, (key, data, label) in enumerate(_samples(Path(path))):
            try:
                image = open_image(io.BytesIO(data), f"{path}:{key}")
            except BadImageError:
                if not self.skip_bad:
                    raise
                yield None, label
                continue
            with _SeededDraws(sample_seed(self.seed, epoch, self.offsets[shard] + position)):
                yield self.transform(image), label

    def _mixed(self, epoch: int, items: Iterator[Any]) -> Iterator[Any]:
        if not self.shuffle:
            yield from items
            return
        draw = random.Random(self.seed * 104_729 + epoch * 31 + self.rank)
        pool: list[Any] = []
        for item in items:
            pool.append(item)
            if len(pool) >= self.buffer:
                yield pool.pop(draw.randrange(len(pool)))
        draw.shuffle(pool)
        yield from pool

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = int(self._epoch)

        def stream() -> Iterator[tuple[torch.Tensor | None, int]]:
            for shard in self.worker_shards(epoch, worker, workers):
                yield from self._images(epoch, shard)

        images, labels, skipped = [], [], 0
        for image, label in self._mixed(epoch, stream()):
            if image is None:
                skipped += 1
                continue
            images.append(image)
            labels.append(label)
            if len(images) == self.chunk:
                yield torch.stack(images), torch.tensor(labels), skipped
                images, labels, skipped = [], [], 0
        if images or skipped:
            yield (torch.stack(images) if images else torch.empty(0)), torch.tensor(labels, dtype=torch.int64), skipped


def shard_steps(index: ShardIndex, world_size: int, batch_size: int) -> int:
    """Steps per training epoch: the same on every rank, set by the rank with the fewest images."""
    return min(index.rank_counts(world_size)) // batch_size
