"""Epochs of batches for the training loop, one interface over the in-memory tensors and the streamed sources.

A loader knows its number of steps per epoch on this rank (``len``), yields ``(images, labels)`` for an epoch
(``loader.epoch(n)``) and counts the unreadable images this rank left out of its last pass (``loader.skipped``:
streamed, those met in the pass; in memory, those skipped when the split was decoded, counted on rank 0 alone, so
a sum over ranks counts each once).

Training batches: the in-memory split is shuffled by torch's ``DistributedSampler`` (every rank its share), folders
by the same sampler inside a ``DataLoader`` whose workers decode and augment, tar shards by shard (see
``.shards``). An image's augmentation is drawn from its seed ``(seed, epoch, index)`` on every path, so a folder
of CIFAR images gives the same batches in memory as streamed.
Evaluation: rank ``r`` of ``w`` takes images ``r, r + w, ...``, so every image is evaluated once.
"""

import signal
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from .folder import ImageFileDataset
from .in_memory import ImageTensors, batches
from .shards import TarShardDataset, shard_steps
from .transforms import Augmentation

__all__ = ["StreamLoader", "TensorLoader", "collate_skipping"]


def collate_skipping(items: list[tuple[torch.Tensor, int] | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``default_collate`` of the images that could be read, and how many could not (``None`` items)."""
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.int64), len(items)
    images, labels = torch.utils.data.default_collate(kept)
    return images, labels, len(items) - len(kept)


def _ignore_interrupts(worker_id: int) -> None:
    """A DataLoader worker leaves Ctrl-C (SIGINT, sent to the whole process group) to the training process, which
    stops between steps and then shuts the workers down (``StreamLoader.close``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _clean_worker_error(error: Exception) -> Exception:
    """A DataLoader worker's exception re-raised in this process carries the worker's traceback in its message;
    keep the last line, which is the library's own message naming the file."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if len(lines) > 1 and "Traceback" in str(error):
        return type(error)(lines[-1].split(": ", 1)[-1])
    return error


class TensorLoader:
    """Batches of an in-memory ``ImageTensors`` split (augmented on whole batches, no workers)."""

    def __init__(
        self,
        data: ImageTensors,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train: bool = False,
        size: int | None = None,
        channels_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.data, self.batch_size, self.train = data, batch_size, train
        self.augmentation = augmentation or Augmentation()
        self.mean, self.std, self.size, self.channels_last = mean, std, size, channels_last
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.sampler = DistributedSampler(
            range(len(data)), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )

    @property
    def skipped(self) -> int:
        """The unreadable images left out of the split when it was decoded (counted on rank 0; 0 on the others)."""
        return self.data.skipped if self.rank == 0 else 0

    @property
    def images(self) -> int:
        """Images this rank sees per epoch (training: its sampler's share; evaluation: its stride)."""
        return len(self.sampler) if self.train else len(range(self.rank, len(self.data), self.world_size))

    def __len__(self) -> int:
        if self.train:
            return self.images // self.batch_size
        return -(-self.images // self.batch_size)

    def close(self) -> None:
        """Nothing to release: the images are in memory."""

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.train:
            indices = torch.arange(self.rank, len(self.data), self.world_size)
            return batches(self.data, self.batch_size, self.mean, self.std, channels_last=self.channels_last,
                           indices=indices, size=self.size)  # fmt: skip
        self.sampler.set_epoch(epoch)
        pad, mode = self.augmentation.crop_padding(self.data.images.shape[-1])
        return batches(
            self.data, self.batch_size, self.mean, self.std, train=True, pad=pad, seed=self.seed, epoch=epoch,
            channels_last=self.channels_last, drop_last=True, indices=torch.tensor(list(self.sampler)), size=self.size,
            pad_mode=mode, alternate_flip=self.augmentation.alternate_flip,
        )  # fmt: skip


class StreamLoader:
    """Batches decoded and augmented in ``workers`` DataLoader processes from an ``ImageFileDataset`` (with a
    distributed sampler) or a ``TarShardDataset`` (which shards itself)."""

    def __init__(
        self,
        dataset: ImageFileDataset | TarShardDataset,
        batch_size: int,
        train: bool = False,
        workers: int = 0,
        channels_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset, self.batch_size, self.train = dataset, batch_size, train
        self.channels_last, self.rank, self.world_size = channels_last, rank, world_size
        self.skipped = 0
        common: dict[str, Any] = {
            "num_workers": workers,
            "pin_memory": pin_memory,
            "persistent_workers": workers > 0,
            # the workers' base seed comes from this generator, not from the global one that dropout draws from
            # (so a resumed run, which starts its workers one epoch later, draws the same dropout masks)
            "generator": torch.Generator().manual_seed(seed),
        }
        if workers > 0:
            common["prefetch_factor"] = 2
            common["worker_init_fn"] = _ignore_interrupts
        self.sampler = None
        if isinstance(dataset, TarShardDataset):
            # chunks of up to dataset.chunk images come from the workers; they are re-batched here
            self.loader = DataLoader(dataset, batch_size=None, **common)
            self.steps = shard_steps(dataset.index, world_size, batch_size) if train else None
            self.images = len(dataset)
        else:
            if train:
                self.sampler = DistributedSampler(
                    dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
                )
                order: Any = self.sampler
            else:
                order = range(rank, len(dataset), world_size)
            self.loader = DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate_skipping,
                                     drop_last=train, **common)  # fmt: skip
            self.images = len(order)
            self.steps = len(self.loader)

    def __len__(self) -> int:
        if self.steps is not None:
            return self.steps
        return -(-self.images // self.batch_size)

    def close(self) -> None:
        """Shut the (persistent) worker processes down now, rather than when the loader is garbage collected."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch``."""
        self.dataset.set_epoch(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.skipped = 0
        return self._batches()

    def _ready(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

    def _chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        try:
            yield from self.loader
        except ValueError as error:  # BadImageError / ShardError from a worker: show the library's message
            raise _clean_worker_error(error) from None

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self.dataset, ImageFileDataset):
            for images, labels, skipped in self._chunks():
                self.skipped += skipped
                if len(labels) == 0:
                    raise ValueError(
                        f"every image of a batch of {self.batch_size} was unreadable ({self.skipped} skipped so far)"
                    )
                yield self._ready(images, labels)
            return
        # tar shards: join the workers' chunks into batches; training stops at the step count all ranks share
        pending_images: list[torch.Tensor] = []
        pending_labels: list[torch.Tensor] = []
        held, steps = 0, 0
        for images, labels, skipped in self._chunks():
            self.skipped += skipped
            if len(labels) == 0:
                continue
            pending_images.append(images)
            pending_labels.append(labels)
            held += len(labels)
            while held >= self.batch_size:
                joined_images, joined_labels = torch.cat(pending_images), torch.cat(pending_labels)
                yield self._ready(joined_images[: self.batch_size], joined_labels[: self.batch_size])
                steps += 1
                if self.steps is not None and steps == self.steps:
                    return
                pending_images, pending_labels = [joined_images[self.batch_size :]], [joined_labels[self.batch_size :]]
                held -= self.batch_size
        if self.steps is None:
            if held:  # evaluation keeps the last, partial batch
                yield self._ready(torch.cat(pending_images), torch.cat(pending_labels))
        elif steps < self.steps:  # only skipped images can make a rank run short; the other ranks would wait
            raise RuntimeError(
                f"rank {self.rank} ran out of images after {steps} of {self.steps} steps: {self.skipped} unreadable "
                "images were skipped in its shards; remove them from the shards"
            )
