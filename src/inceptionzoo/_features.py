"""Feature extraction: ``features_only=True`` models built on timm's feature wrappers.

``feature_cls`` takes timm's names with timm's meaning: ``"list"`` (the default here: a list of maps),
``"dict"`` (maps keyed by module name), ``"hook"`` (forward hooks), ``"fx"`` (a traced graph), ``"getter"``
(the model's ``forward_intermediates``), or a feature-wrapper class.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Any

import torch
from timm.models import FeatureDictNet, FeatureGraphNet, FeatureHookNet, FeatureListNet
from timm.models._features import FeatureGetterNet  # not re-exported by timm.models
from torch import nn

from ._validation import check_image_input

__all__ = ["FEATURE_CLASSES", "FeatureExtractor", "build_feature_extractor", "check_feature_indices"]


class FeatureExtractor(FeatureListNet):
    """timm's ``FeatureListNet`` (a list of feature maps at the ``out_indices`` taps) with the model's input checks.

    ``feature_info.channels()`` and ``feature_info.reduction()`` describe the maps, as in timm.
    """

    def __init__(self, model: nn.Module, out_indices: tuple[int, ...]) -> None:
        container = getattr(model, "layer_container", "")
        # a container of layers is opened so its layers are taps; a stage's nn.Sequential (Inception-ResNet's
        # "repeat") stays whole, as its taps name it
        super().__init__(model, out_indices=out_indices, flatten_sequential=bool(container))
        self.min_height, self.min_width = _carry_model_facts(self, model)
        if container:  # timm's flattening names features.3 "features_3": the model's own keys load too
            self._register_load_state_dict_pre_hook(partial(_flattened_keys, prefix_from=f"{container}."))
        self.register_buffer("dtype_reference", torch.empty(0), persistent=False)  # follows the weights' dtype

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_input(x, self.in_chans, self.min_height, self.min_width, self.dtype_reference)
        return super().forward(x)


def _flattened_keys(state_dict: dict[str, Any], prefix: str, *args: Any, prefix_from: str) -> None:
    """Rename ``features.3.conv.weight`` to ``features_3.conv.weight`` (in place, as torch's pre-hooks do)."""
    for key in [k for k in state_dict if k.startswith(prefix + prefix_from)]:
        state_dict[prefix + prefix_from[:-1] + "_" + key[len(prefix + prefix_from) :]] = state_dict.pop(key)


def _carry_model_facts(features: nn.Module, model: nn.Module) -> tuple[int, int]:
    """Give a feature wrapper the model's ``in_chans`` and ``pretrained_cfg``; returns the minimum input size its
    input checks use."""
    features.in_chans = model.in_chans
    pretrained_cfg = getattr(model, "pretrained_cfg", None)
    if pretrained_cfg is not None:
        features.pretrained_cfg = features.default_cfg = pretrained_cfg
    return getattr(model, "features_min_size", (1, 1))


def check_feature_indices(
    feature_info: list[dict[str, Any]], indices: Any, argument: str = "out_indices"
) -> tuple[int, ...] | int | None:
    """``indices`` as timm reads them (an int n: the last n taps; a list: these taps; None: all), checked against
    the model's taps so that a wrong one is an error listing them. Returns them as a tuple, an int or None."""
    taps = len(feature_info)
    modules = ", ".join(f"{i}: {info['module']}" for i, info in enumerate(feature_info))
    if indices is None:
        return None
    if isinstance(indices, numbers.Integral) and not isinstance(indices, bool):
        if not 1 <= indices <= taps:
            raise ValueError(
                f"{argument}={indices}: an int n takes the last n feature taps, 1 to {taps} here ({modules})"
            )
        return int(indices)
    if not isinstance(indices, (list, tuple)) or not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in indices
    ):
        raise TypeError(f"{argument} must be an int (the last n taps) or a list of tap indices, got {indices!r}")
    bad = [i for i in indices if not -taps <= i < taps]
    if bad or not indices:
        raise ValueError(f"{argument} {list(indices)} out of range; this model has {taps} feature taps ({modules})")
    return tuple(int(i) for i in indices)


FEATURE_CLASSES: dict[str, type[nn.Module]] = {
    "list": FeatureExtractor,
    "dict": FeatureDictNet,
    "hook": FeatureHookNet,
    "fx": FeatureGraphNet,
    "getter": FeatureGetterNet,
}  # timm maps these names inside build_model_with_cfg, with no function of its own to call


def _feature_class(feature_cls: str | type[nn.Module] | None) -> type[nn.Module]:
    if feature_cls is None:
        return FeatureExtractor
    if isinstance(feature_cls, type) and issubclass(feature_cls, nn.Module):
        return FeatureExtractor if feature_cls is FeatureListNet else feature_cls
    name = str(feature_cls).lower()
    if "hook" in name:  # timm reads any name containing "hook" as the hook wrapper
        name = "hook"
    if name not in FEATURE_CLASSES:
        raise ValueError(f"feature_cls={feature_cls!r}: choose one of {', '.join(map(repr, FEATURE_CLASSES))} or a "
                         "feature wrapper class")  # fmt: skip
    return FEATURE_CLASSES[name]


def build_feature_extractor(
    model: nn.Module,
    out_indices: tuple[int, ...] | list[int] | int | None,
    feature_cls: str | type[nn.Module] | None = None,
    feature_cfg: dict[str, Any] | None = None,
) -> nn.Module:
    """Wrap ``model`` so that it returns its feature maps at ``out_indices`` (default: every tap), with timm's
    ``feature_cls`` and ``feature_cfg`` (the wrapper's own arguments, e.g. ``flatten_sequential``)."""
    feature_cfg = dict(feature_cfg or {})
    out_indices = feature_cfg.pop("out_indices", out_indices)
    wrapper = _feature_class(feature_cfg.pop("feature_cls", feature_cls))
    taps = len(model.feature_info)
    out_indices = check_feature_indices(model.feature_info, out_indices)
    if out_indices is None:
        out_indices = tuple(range(taps))
    elif isinstance(out_indices, int):
        out_indices = tuple(range(taps - out_indices, taps))
    if wrapper is FeatureExtractor:
        if feature_cfg:
            raise TypeError(f"feature_cfg {sorted(feature_cfg)}: the list wrapper takes only out_indices and "
                            "feature_cls")  # fmt: skip
        return FeatureExtractor(model, out_indices)
    try:
        features = wrapper(model, out_indices=out_indices, **feature_cfg)
    except TypeError as error:
        raise TypeError(f"feature_cfg {feature_cfg} does not fit {wrapper.__name__}: {error}") from None
    min_size = _carry_model_facts(features, model)

    def check_input(module: nn.Module, args: tuple) -> None:
        check_image_input(args[0], module.in_chans, *min_size, next(module.parameters(), None))

    features.register_forward_pre_hook(check_input)  # the same input errors as the model and the list wrapper
    return features
