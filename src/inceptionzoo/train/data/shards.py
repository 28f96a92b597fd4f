"""Images streamed from tar shards in the webdataset layout: each shard holds ``{key}.jpg`` (or .png, .webp, ...)
and ``{key}.cls`` (the class index as text) per sample; a ``classes.txt`` beside the shards may name the classes.

Written by hand, not with the ``webdataset`` package (not a dependency) or timm's ``wds`` reader (which needs it):
the reader is one sequential pass per shard with Python's ``tarfile``. Shards are dealt to ranks (shard ``j`` to
rank ``j % world``, fixed, so every rank knows every rank's sample count) and, in a new order each epoch, to the
DataLoader workers of a rank; each image belongs to exactly one rank and worker. Every rank runs the same number of
steps, ``min over ranks of (its images // batch)``, so DDP never waits on a rank that ran out.
"""

import io
import json
import os
import random
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

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
    """``(key, image bytes, label)`` in shard order, in one sequential pass; errors name the shard."""
    current, parts = None, {}

    def finish() -> tuple[str, bytes, int]:
        image = next((parts[k] for k in IMAGE_KEYS if k in parts), None)
        if image is None or "cls" not in parts:
            missing = "image" if image is None else ".cls label"
            raise ShardError(f"{path}: sample {current!r} has no {missing} (members: {', '.join(sorted(parts))})")
        try:
            label = int(parts["cls"].decode().strip())
        except ValueError:
            raise ShardError(f"{path}: {current}.cls is not a class index: {parts['cls'][:20]!r}") from None
        return current, image, label

    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                key, extension = _split_key(member.name)
                if key != current:
                    if current is not None:
                        yield finish()
                    current, parts = key, {}
                parts[extension] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ShardError(f"{path} cannot be read to the end: it is cut short or not a tar file ({error})") from None
    if current is not None:
        yield finish()


@dataclass(frozen=True)
class ShardIndex:
    """What a split of shards holds: the shard files, images per shard and the class names."""

    shards: tuple[str, ...]
    counts: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return sum(self.counts)

    def rank_counts(self, world_size: int) -> list[int]:
        return [sum(self.counts[rank::world_size]) for rank in range(world_size)]


def index_shards(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> ShardIndex:
    """Count each shard's samples and find the classes (one pass over the shards; cached by name, size and time)."""
    folder = Path(folder)
    shards = find_shards(folder)
    if not shards:
        raise FileNotFoundError(f"no tar shards ({', '.join(SHARD_SUFFIXES)}) in {folder}")
    stamp = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in shards]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"shards-{zlib.crc32(json.dumps([str(folder.resolve()), stamp]).encode()):08x}.json"
        if cache.is_file():
            saved = json.loads(cache.read_text())
            return ShardIndex(tuple(map(str, shards)), tuple(saved["counts"]), tuple(saved["classes"]))
    counts, top = [], -1
    for shard in shards:
        labels = [label for _, _, label in _samples(shard)]
        if not labels:
            raise ShardError(f"{shard} holds no samples")
        counts.append(len(labels))
        top = max(top, *labels)
    names_file = next((p / "classes.txt" for p in (folder, folder.parent) if (p / "classes.txt").is_file()), None)
    if names_file is not None:
        classes = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
        if len(classes) <= top:
            raise ShardError(f"{names_file} names {len(classes)} classes, but the shards use class index {top}")
    else:
        classes = tuple(str(i) for i in range(top + 1))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"counts": counts, "classes": list(classes)}))
        os.replace(partial, cache)
    return ShardIndex(tuple(map(str, shards)), tuple(counts), classes)


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
