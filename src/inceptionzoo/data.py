"""The preprocessing a model's weights expect, through timm's own data-config and transform factories."""

from typing import Any

from torch import nn

__all__ = ["create_transform", "data_config"]


def data_config(model: nn.Module, **overrides: Any) -> dict[str, Any]:
    """Input size, interpolation, mean, std and crop of ``model``'s weights (timm's ``resolve_model_data_config``)."""
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    config.update(overrides)
    return config


def create_transform(model: nn.Module, is_training: bool = False, **overrides: Any) -> Any:
    """The torchvision transform that prepares PIL images for ``model``: resize, center crop, normalize (eval), or
    timm's training augmentation with ``is_training=True``."""
    from timm.data import create_transform as timm_create_transform

    return timm_create_transform(**data_config(model, **overrides), is_training=is_training)
