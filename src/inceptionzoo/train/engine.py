"""One training epoch and one evaluation pass: bf16 autocast, channels_last, gradient clipping, auxiliary-head
losses and weight averaging, with no host synchronisation inside the step loop."""

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .recipes import Recipe

__all__ = ["EpochStats", "evaluate", "train_one_epoch"]


@dataclass
class EpochStats:
    """Averages over an epoch: ``loss`` and ``top1``/``top5`` accuracy in percent, and the images seen."""

    loss: float
    top1: float
    top5: float
    images: int


def _split_outputs(output: torch.Tensor | tuple) -> tuple[torch.Tensor, list[torch.Tensor]]:
    if isinstance(output, tuple):  # InceptionOutputs / GoogLeNetOutputs: logits first, then the aux heads
        return output[0], list(output[1:])
    return output, []


def _correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels.view(-1, 1)).any(dim=1).sum()


def train_one_epoch(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    recipe: Recipe,
    ema: nn.Module | None = None,
    autocast_dtype: torch.dtype | None = torch.bfloat16,
    device: torch.device | str = "cpu",
) -> EpochStats:
    """Train for one pass over ``data``; auxiliary heads add ``recipe.aux_weight`` times their loss."""
    device = torch.device(device)
    model.train()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top-1, top-5, images
    for images, labels in data:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits, aux = _split_outputs(model(images))
            loss = loss_fn(logits, labels)
            for aux_logits in aux:
                loss = loss + recipe.aux_weight * loss_fn(aux_logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
        optimizer.step()
        if ema is not None:
            ema.update(model)
        with torch.no_grad():  # accumulated on the device: no .item() per step
            batch = labels.numel()
            totals += torch.stack(
                [
                    loss.detach().double() * batch,
                    _correct(logits, labels, 1),
                    _correct(logits, labels, 5),
                    torch.tensor(batch, device=device),
                ]
            ).double()
    return _stats(totals)


def _stats(totals: torch.Tensor) -> EpochStats:
    loss_sum, top1, top5, images = totals.tolist()
    images = max(images, 1)
    return EpochStats(loss=loss_sum / images, top1=100 * top1 / images, top5=100 * top5 / images, images=int(images))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: nn.Module | None = None,
    flip_tta: bool = False,
    autocast_dtype: torch.dtype | None = torch.bfloat16,
    device: torch.device | str = "cpu",
) -> EpochStats:
    """Loss and top-1/top-5 accuracy over ``data``; ``flip_tta`` averages the logits of each image and its mirror."""
    device = torch.device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    for images, labels in data:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits, _ = _split_outputs(model(images))
            if flip_tta:
                logits = (logits + _split_outputs(model(images.flip(-1)))[0]) / 2
        logits = logits.float()
        batch = labels.numel()
        totals += torch.stack(
            [
                loss_fn(logits, labels).double() * batch,
                _correct(logits, labels, 1),
                _correct(logits, labels, 5),
                torch.tensor(batch, device=device),
            ]
        ).double()
    return _stats(totals)
