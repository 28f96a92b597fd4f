"""Feature extraction: ``features_only=True`` models built on timm's feature wrappers."""

from __future__ import annotations

import torch
from timm.models._features import FeatureListNet
from torch import nn

from .layers import check_image_input

__all__ = ["FeatureExtractor", "build_feature_extractor"]


class FeatureExtractor(FeatureListNet):
    """timm's ``FeatureListNet`` (a list of feature maps at the ``out_indices`` taps) with the model's input checks.

    ``feature_info.channels()`` and ``feature_info.reduction()`` describe the maps, as in timm.
    """

    def __init__(self, model: nn.Module, out_indices: tuple[int, ...]) -> None:
        min_size = getattr(model, "features_min_size", (1, 1))
        in_chans = model.in_chans
        pretrained_cfg = getattr(model, "pretrained_cfg", None)
        super().__init__(model, out_indices=out_indices, flatten_sequential=True)
        self.in_chans = in_chans
        self.min_height, self.min_width = min_size
        if pretrained_cfg is not None:
            self.pretrained_cfg = self.default_cfg = pretrained_cfg

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_input(x, self.in_chans, self.min_height, self.min_width)
        return super().forward(x)


def build_feature_extractor(
    model: nn.Module, out_indices: tuple[int, ...] | list[int] | int | None
) -> FeatureExtractor:
    """Wrap ``model`` so that it returns its feature maps at ``out_indices`` (default: every tap)."""
    taps = len(model.feature_info)
    if out_indices is None:
        out_indices = tuple(range(taps))
    elif isinstance(out_indices, int):
        out_indices = tuple(range(taps - out_indices, taps))
    out_indices = tuple(out_indices)
    bad = [i for i in out_indices if not -taps <= i < taps]
    if bad:
        modules = ", ".join(f"{i}: {info['module']}" for i, info in enumerate(model.feature_info))
        raise ValueError(f"out_indices {bad} out of range; this model has {taps} feature taps ({modules})")
    return FeatureExtractor(model, out_indices)
