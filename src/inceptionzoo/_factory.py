"""``create_model``: the one entry point that builds any registered model by name, as in timm."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ._registry import get_pretrained_cfg, model_entrypoint, resolve_model_name

__all__ = ["create_model"]


def create_model(
    model_name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    global_pool: str | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | list[int] | int | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Build a model by name: ``"inception_v3"`` or ``"inception_v3.<tag>"`` for a given set of weights.

    Args:
        model_name: a name from :func:`list_models`, optionally with a weight tag.
        pretrained: load the tag's published weights.
        num_classes: classifier size; 0 gives pooled features (``forward`` returns ``(B, num_features)``).
        in_chans: input channels (the first convolution is sized for it).
        drop_rate: dropout before the classifier.
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"``, ``"catavgmax"``, or ``""`` for unpooled features.
        features_only: return a feature extractor giving the maps at ``out_indices`` (``model.feature_info``).
        out_indices: which feature taps to return (default: all).
        checkpoint_path: a local ``.safetensors`` or ``.pth`` file to load after building (strict).
        pretrained_cfg_overlay: fields replacing those of the tag's pretrained config.
        **model_kwargs: the model's own arguments (e.g. ``aux_logits=True``); unknown names are an error.
    """
    arch, tag = resolve_model_name(model_name)
    variant = f"{arch}.{tag}" if tag else arch
    passed = {
        "num_classes": num_classes,
        "in_chans": in_chans,
        "drop_rate": drop_rate,
        "global_pool": global_pool,
    }
    model_kwargs.update({k: v for k, v in passed.items() if v is not None})
    return model_entrypoint(arch)(
        pretrained=pretrained,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        features_only=features_only,
        out_indices=out_indices,
        checkpoint_path=checkpoint_path,
        pretrained_cfg=get_pretrained_cfg(variant),
        **model_kwargs,
    )
