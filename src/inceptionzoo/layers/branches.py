"""Branches that read one input and are concatenated: the "filter concat" of every Inception module, and the same
concatenation run as one convolution where every branch is a single convolution."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from ..sizes import spatial_output_size
from .conv import ConvNormAct

__all__ = ["FusedConvBranches", "ParallelBranches", "branches_one_by_one"]

_ONE_BY_ONE: ContextVar[bool] = ContextVar("branches_one_by_one", default=False)


@contextmanager
def branches_one_by_one() -> Iterator[None]:
    """Inside the block every ``FusedConvBranches`` runs its branches one by one: what counting a network's own
    multiply-adds needs, since the fused convolution also multiplies the zeros its smaller filters are padded with."""
    token = _ONE_BY_ONE.set(True)
    try:
        yield
    finally:
        _ONE_BY_ONE.reset(token)


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


class FusedConvBranches(ParallelBranches):
    """``ParallelBranches`` whose branches are each one ``ConvNormAct`` over the input (figure 2b's 1x1 beside its
    3x3), run as one convolution: each filter zero-padded to the largest kernel, the filters stacked, then one
    BatchNorm and one activation over all the channels. The same function, parameters and state dict as
    ``ParallelBranches``; on CPUs one wide convolution runs faster than narrow ones and a concatenation.

    Written by hand because neither torch nor timm runs unlike branches as one training-time convolution. Branches
    that cannot run as one (a norm other than ``BatchNorm2d``, e.g. ``SyncBatchNorm``; unlike activations, strides
    or paddings) run one by one, as they do under TorchScript, FX tracing and ``branches_one_by_one()``, so graph
    passes see every branch and ``count_macs`` counts the network's own multiply-adds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and self._fused_now():
            return self._one_convolution(x)
        return torch.cat([branch(x) for branch in self.children()], 1)  # ParallelBranches'; super() does not script

    @torch.jit.unused
    def _fused_now(self) -> bool:
        tracer = torch.fx._symbolic_trace  # fx's symbolic tracing, not torch.export, whose graphs may hold fused ops
        tracing = getattr(tracer, "is_fx_symbolic_tracing", tracer.is_fx_tracing)()
        return not tracing and not _ONE_BY_ONE.get() and self.runs_as_one_convolution()

    @torch.jit.unused
    def runs_as_one_convolution(self) -> bool:
        """Whether the branches can run as one convolution now (norm layers can be swapped after building)."""
        branches = list(self.children())
        if not branches or not all(type(b) is ConvNormAct and type(b.conv) is nn.Conv2d for b in branches):
            return False
        convs = [b.conv for b in branches]
        first, norm, act = convs[0], branches[0].bn, branches[0].act
        for conv in convs:
            height, width = conv.kernel_size
            if (height != width or height % 2 == 0 or conv.padding != (height // 2, width // 2)
                    or conv.stride != first.stride or conv.dilation != (1, 1) or conv.groups != 1
                    or conv.padding_mode != "zeros" or (conv.bias is None) != (first.bias is None)):  # fmt: skip
                return False
        if any(type(b.act) is not type(act) or repr(b.act) != repr(act) for b in branches):
            return False
        if type(norm) is nn.Identity:
            return all(type(b.bn) is nn.Identity for b in branches)
        return all(
            type(b.bn) is nn.BatchNorm2d and b.bn.affine and b.bn.track_running_stats and b.bn.momentum is not None
            and (b.bn.eps, b.bn.momentum) == (norm.eps, norm.momentum)
            for b in branches
        )  # fmt: skip

    @torch.jit.unused
    def _one_convolution(self, x: torch.Tensor) -> torch.Tensor:
        branches: list[ConvNormAct] = list(self.children())  # type: ignore[arg-type]
        size = max(b.conv.kernel_size[0] for b in branches)
        weights = [F.pad(b.conv.weight, [(size - b.conv.kernel_size[0]) // 2] * 4) for b in branches]
        bias = None if branches[0].conv.bias is None else torch.cat([b.conv.bias for b in branches])
        y = F.conv2d(x, torch.cat(weights), bias, branches[0].conv.stride, size // 2)
        norms = [b.bn for b in branches]
        if isinstance(norms[0], nn.BatchNorm2d):
            mean = torch.cat([n.running_mean for n in norms])
            var = torch.cat([n.running_var for n in norms])
            y = F.batch_norm(y, mean, var, torch.cat([n.weight for n in norms]), torch.cat([n.bias for n in norms]),
                             self.training, norms[0].momentum, norms[0].eps)  # fmt: skip
            if self.training:  # F.batch_norm updated the concatenated copies; hand each norm its share
                shares = [n.num_features for n in norms]
                with torch.no_grad():
                    for norm, share_mean, share_var in zip(norms, mean.split(shares), var.split(shares), strict=True):
                        norm.running_mean.copy_(share_mean)
                        norm.running_var.copy_(share_var)
                        norm.num_batches_tracked.add_(1)
        return branches[0].act(y)
