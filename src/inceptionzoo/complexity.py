"""Model cost figures: parameters and multiply-adds, counted by torch's own ``FlopCounterMode``."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .layers import branches_one_by_one

__all__ = ["count_macs", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (auxiliary heads included if the model has them)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> int:
    """Multiply-adds of one eval-mode forward pass on a single image of ``input_size`` (C, H, W).

    Defaults to the model's ``pretrained_cfg['input_size']``. torch counts a multiply-add as two FLOPs. Fused
    branches are counted one by one: the network's own multiply-adds, not the padding's zeros.
    """
    if input_size is None:
        input_size = tuple(model.pretrained_cfg["input_size"])
    was_training = model.training
    model.eval()
    try:
        with branches_one_by_one(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
