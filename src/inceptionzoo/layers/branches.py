"""Branches that read one input and are concatenated: the "filter concat" of every Inception module."""

from __future__ import annotations

import torch
from torch import nn

from ..sizes import spatial_output_size

__all__ = ["ParallelBranches"]


def _sequence_size(module: nn.Module, size: int, dim: int) -> int:
    """Spatial size after a layer, or after each layer of an ``nn.Sequential`` in turn."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            size = spatial_output_size(layer, size, dim)
        return size
    return spatial_output_size(module, size, dim)


class ParallelBranches(nn.Module):
    """Branches that read the same input, their outputs concatenated along the channels in the order given: the
    "filter concat" of every module in figures 3-8. Each branch is a layer or an ``nn.Sequential``."""

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__()
        for name, branch in branches.items():
            setattr(self, name, branch)

    def output_size(self, size: int, dim: int) -> int:
        sizes = {_sequence_size(branch, size, dim) for branch in self.children()}
        return min(sizes)  # the branches agree where the input fits; a branch that does not fit decides

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)
