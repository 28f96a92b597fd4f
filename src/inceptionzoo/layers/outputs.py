"""The named tuples a model built with auxiliary heads returns, in training and eval mode alike."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["GoogLeNetOutputs", "InceptionOutputs"]


class InceptionOutputs(NamedTuple):
    """What a model built with ``aux_logits=True`` returns, in training and in eval mode alike.

    It unpacks like timm's ``(logits, aux_logits)`` tuple, and names its fields like torchvision's
    ``InceptionOutputs``, so code written for either keeps working.
    """

    logits: torch.Tensor
    aux_logits: torch.Tensor


class GoogLeNetOutputs(NamedTuple):
    """What a GoogLeNet-family model built with ``aux_logits=True`` returns, in training and eval mode alike.

    Field names and order are torchvision's ``GoogLeNetOutputs``: the head on 4d comes before the head on 4a.
    """

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor
