"""Muon for the convolution filters and the recipe's own optimizer for the rest, stepped as one optimizer.

airbench94_muon (Jordan 2024) trains the filters of its CIFAR network with Muon and its biases and head with
Nesterov SGD. timm's ``Muon`` gives its other parameters to AdamW, and the training loop, timm's ``Lookahead`` and
timm's schedulers all take a single optimizer, so ``SplitOptimizer`` is the few lines none of them offers: it steps
two optimizers as one and keeps one state mapping for the lookahead's slow weights.
"""

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["SplitOptimizer", "filter_parameters"]


def filter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable convolution filters (4-d weights); a frozen whitening stem is left out."""
    return [p for p in model.parameters() if p.ndim == 4 and p.requires_grad]


class _StateByOwner(Mapping):
    """The two optimizers' per-parameter state seen as one mapping, each parameter's kept by its own optimizer."""

    def __init__(self, owners: dict[int, torch.optim.Optimizer]) -> None:
        self._owners = owners

    def __getitem__(self, param: torch.Tensor) -> dict[str, Any]:
        return self._owners[id(param)].state[param]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (p for optimizer in dict.fromkeys(self._owners.values()) for p in optimizer.state)

    def __len__(self) -> int:
        return sum(len(optimizer.state) for optimizer in dict.fromkeys(self._owners.values()))


class SplitOptimizer(torch.optim.Optimizer):
    """``rest`` and ``filters`` stepped as one optimizer: one list of parameter groups for the schedulers, one state.

    Before its update each filter tensor is rescaled to a norm of sqrt(its output channels), as airbench94_muon
    does: a filter followed by batch norm is scale-free, so this fixes the step's relative size instead of letting
    it shrink as the weights grow.
    """

    def __init__(self, rest: torch.optim.Optimizer, filters: torch.optim.Optimizer) -> None:
        # no super().__init__: the groups and state belong to the two optimizers (as in timm's Lookahead)
        self._optimizer_step_pre_hooks: dict[int, Any] = {}
        self._optimizer_step_post_hooks: dict[int, Any] = {}
        self.optimizers = (rest, filters)
        self.defaults = dict(rest.defaults)
        self._sync_groups()

    def _sync_groups(self) -> None:
        self.param_groups = [group for optimizer in self.optimizers for group in optimizer.param_groups]
        owners = {id(p): o for o in self.optimizers for group in o.param_groups for p in group["params"]}
        self.state = _StateByOwner(owners)  # type: ignore[assignment]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rest, filters = self.optimizers
        for group in filters.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(math.sqrt(p.shape[0]) / p.norm().clamp_min(1e-12))
        rest.step()
        filters.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            optimizer.load_state_dict(state)
        self._sync_groups()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(type(o).__name__ for o in self.optimizers)})"
