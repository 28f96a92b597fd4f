"""One training epoch and one evaluation pass: bf16/fp16 autocast, gradient clipping, auxiliary-head losses,
per-step learning rates and weight averaging, with no host synchronisation inside the step loop.

Under ``torch.distributed`` the epoch's sums are all-reduced, so every rank returns the same global figures.
"""

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
import torch.distributed as dist
from timm.utils import accuracy, unwrap_model  # unwrap_model: DDP (module) and torch.compile (_orig_mod)
from torch import nn

from ..precision import choose_precision
from .recipes import Recipe

__all__ = [
    "EpochStats",
    "autocast",
    "autocast_dtype",
    "evaluate",
    "split_outputs",
    "train_one_epoch",
    "unwrap_model",
]


@dataclass
class EpochStats:
    """Averages over an epoch: ``loss`` and ``top1``/``top5`` accuracy in percent, and the images seen."""

    loss: float
    top1: float
    top5: float
    images: int


def split_outputs(output: torch.Tensor | tuple) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(logits, [auxiliary logits])`` of a model's output, plain logits or an InceptionOutputs tuple."""
    if isinstance(output, tuple):  # InceptionOutputs / GoogLeNetOutputs: logits first, then the aux heads
        return output[0], [aux for aux in output[1:] if aux is not None]
    return output, []


def _batch_totals(loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss sum, top-1 and top-5 counts and images of one batch, summed exactly over batches and ranks: timm's
    ``accuracy`` gives percentages, rounded back to counts here."""
    batch = labels.numel()
    top1, top5 = (percent.double() * batch / 100 for percent in accuracy(logits, labels, topk=(1, 5)))
    return torch.stack(
        [
            loss.detach().double() * batch,
            top1.round(),
            top5.round(),
            torch.tensor(batch, dtype=torch.float64, device=labels.device),
        ]
    )


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on ``device``; ``None`` runs in float32."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--amp``: ``bf16``, ``fp16`` (CUDA only: it needs a gradient scaler), ``none``
    (float32, no autocast), or ``auto``: ``precision.choose_precision``'s pick for ``device``, the one rule that
    inference's ``dtype="auto"`` follows too."""
    if amp == "none":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device (it relies on a gradient scaler); use bf16 on CPU")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if amp != "auto":
        raise ValueError(f"--amp must be auto, bf16, fp16 or none, got {amp!r}")
    chosen = choose_precision(device).dtype
    return None if chosen == torch.float32 else chosen


def train_one_epoch(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    recipe: Recipe,
    ema: nn.Module | None = None,
    autocast_dtype: torch.dtype | None = torch.bfloat16,
    device: torch.device | str = "cpu",
    scheduler: Any = None,
    num_updates: int = 0,
    grad_scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[int, torch.Tensor, float], None] | None = None,
    grad_accum: int = 1,
    mixup: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    after_update: Callable[[int], None] | None = None,
    between_steps: Callable[[], None] | None = None,
    max_steps: int | None = None,
) -> EpochStats:
    """Train for one pass over ``data`` (its first ``max_steps`` batches: a fractional epoch's last pass);
    auxiliary heads add ``recipe.aux_weight`` times their loss.

    ``scheduler`` (a timm scheduler) gets ``step_update`` after every optimizer step, counted from ``num_updates``;
    ``grad_scaler`` is for fp16; ``grad_accum`` sums the gradients of that many batches per optimizer step (without
    DDP's all-reduce in between); ``mixup`` (timm's ``Mixup``) mixes each batch and returns soft targets;
    ``on_step(step, running_totals, data_wait_seconds)`` is called after each batch (progress reports),
    ``after_update(num_updates)`` before each optimizer step (a lookahead schedule), ``between_steps()`` after each
    batch, before the next is fetched (it raises to stop the epoch there: a Ctrl-C).
    """
    device = torch.device(device)
    model.train()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top-1, top-5, images
    data_wait = 0.0
    optimizer.zero_grad(set_to_none=True)  # a partial accumulation left by the last epoch is dropped
    batches = iter(data if max_steps is None else islice(data, max_steps))
    step = 0
    while True:
        waited = time.perf_counter()
        batch = next(batches, None)
        data_wait += time.perf_counter() - waited
        if batch is None:
            break
        images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        targets = labels
        if mixup is not None:
            images, targets = mixup(images, labels)
        last_of_update = (step + 1) % grad_accum == 0
        sync = contextlib.nullcontext() if last_of_update or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast(device, autocast_dtype):
                logits, aux = split_outputs(model(images))
                loss = loss_fn(logits, targets)
                for aux_logits in aux:
                    loss = loss + recipe.aux_weight * loss_fn(aux_logits, targets)
            scaled = loss / grad_accum
            if grad_scaler is not None:
                grad_scaler.scale(scaled).backward()
            else:
                scaled.backward()
        if last_of_update:
            num_updates += 1
            if after_update is not None:
                after_update(num_updates)
            _update(model, optimizer, recipe, grad_scaler, scheduler, ema, num_updates)
        with torch.no_grad():  # accumulated on the device: no .item() per step
            totals += _batch_totals(loss, logits, labels)
        if on_step is not None:
            on_step(step, totals, data_wait)
        if between_steps is not None:
            between_steps()
        step += 1
    return _stats(totals)


def _update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    recipe: Recipe,
    grad_scaler: torch.amp.GradScaler | None,
    scheduler: Any,
    ema: nn.Module | None,
    num_updates: int,
) -> None:
    """One optimizer step on the gradients gathered so far: unscale, clip, step, schedule, average, zero."""
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)
    if recipe.clip_grad is not None:
        nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
    if grad_scaler is not None:
        grad_scaler.step(optimizer)
        grad_scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step_update(num_updates=num_updates)
    if ema is not None:
        ema.update(unwrap_model(model), step=num_updates)


def _stats(totals: torch.Tensor) -> EpochStats:
    if dist.is_available() and dist.is_initialized():
        totals = totals.clone()
        dist.all_reduce(totals)  # sums over every rank's share of the data
    loss_sum, top1, top5, images = totals.tolist()
    images = max(images, 1)
    return EpochStats(loss=loss_sum / images, top1=100 * top1 / images, top5=100 * top5 / images, images=int(images))


def _views_logits(model: nn.Module, images: torch.Tensor, flip: bool) -> torch.Tensor:
    logits = split_outputs(model(images))[0]
    return (logits + split_outputs(model(images.flip(-1)))[0]) / 2 if flip else logits


def _shifted_views(images: torch.Tensor, pixels: int) -> list[torch.Tensor]:
    """The batch shifted ``pixels`` up-left and down-right, the borders reflected."""
    height, width = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (pixels,) * 4, mode="reflect")
    far = 2 * pixels
    return [padded[..., :height, :width], padded[..., far : far + height, far : far + width]]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: nn.Module | None = None,
    flip_tta: bool = False,
    autocast_dtype: torch.dtype | None = torch.bfloat16,
    device: torch.device | str = "cpu",
    translate_tta: int = 0,
) -> EpochStats:
    """Loss and top-1/top-5 accuracy over ``data``; ``flip_tta`` averages the logits of each image and its mirror,
    ``translate_tta`` (pixels) also those of two copies shifted diagonally both ways (reflected borders), weighted
    half the unshifted view's, as airbench's test-time augmentation does."""
    device = torch.device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    for images, labels in data:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, autocast_dtype):
            logits = _views_logits(model, images, flip_tta)
            if translate_tta:
                logits = logits / 2 + sum(_views_logits(model, view, flip_tta) for view in
                                          _shifted_views(images, translate_tta)) / 4  # fmt: skip
        logits = logits.float()
        totals += _batch_totals(loss_fn(logits, labels), logits, labels)
    return _stats(totals)
