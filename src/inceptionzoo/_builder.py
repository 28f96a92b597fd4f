"""Turning a registered architecture, its pretrained config and the caller's arguments into a model."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from timm.models import PretrainedCfg
from torch import nn

from ._features import build_feature_extractor
from ._registry import InceptionPretrainedCfg, full_model_name, get_pretrained_cfg, list_pretrained
from ._validation import check_known_names
from .checkpoint import load_checkpoint, load_pretrained_weights, load_state_dict

__all__ = ["build_model_with_cfg"]


_FACTORY_ARGUMENTS = {
    "pretrained", "features_only", "out_indices", "feature_cls", "feature_cfg", "checkpoint_path", "pretrained_cfg",
    "pretrained_file",
    "pretrained_cfg_overlay", "scriptable", "exportable", "no_jit", "cache_dir",
}  # fmt: skip


def _check_model_kwargs(model_cls: type[nn.Module], variant: str, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(model_cls.__init__).parameters
    accepted = {name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    accepted -= {"self", "config"}
    config_class = getattr(model_cls, "config_class", None)
    if config_class is not None:  # config fields may be passed as keyword arguments
        accepted |= {f.name for f in dataclasses.fields(config_class)}
    elif any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    check_known_names(variant, kwargs, accepted | _FACTORY_ARGUMENTS)  # create_model's own arguments count too


def resolve_pretrained_cfg(
    variant: str, pretrained_cfg: PretrainedCfg | dict | None = None, overlay: dict | None = None
) -> PretrainedCfg:
    """The config for ``variant`` (``arch`` or ``arch.tag``), replaced or overlaid by the caller's."""
    if isinstance(pretrained_cfg, PretrainedCfg):
        cfg = pretrained_cfg
    elif isinstance(pretrained_cfg, dict):
        cfg = InceptionPretrainedCfg.from_dict(pretrained_cfg)
    else:
        cfg = get_pretrained_cfg(variant)
    if overlay:
        check_known_names("pretrained_cfg_overlay", overlay, type(cfg).__dataclass_fields__, what="field")
        cfg = replace(cfg, **overlay)
    return cfg


def build_model_with_cfg(
    model_cls: type[nn.Module],
    variant: str,
    pretrained: bool = False,
    pretrained_cfg: PretrainedCfg | dict | None = None,
    pretrained_cfg_overlay: dict | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | list[int] | int | None = None,
    feature_cls: str | type[nn.Module] | None = None,
    feature_cfg: dict[str, Any] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    pretrained_filter_fn: Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build ``model_cls(**kwargs)`` for ``variant``, attach its ``pretrained_cfg``, load weights, wrap features.

    Keyword arguments the model does not take are an error naming them, never silently dropped. With
    ``pretrained=True`` the weights are fetched (see ``hub.resolve``) and loaded, adapting ``num_classes`` and
    ``in_chans``. ``pretrained_filter_fn(state_dict, model)`` maps published weights in another layout to the
    model's keys first, as timm's argument of that name does.
    """
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg, pretrained_cfg_overlay)
    if not features_only and (feature_cls is not None or feature_cfg):
        raise ValueError("feature_cls and feature_cfg choose the feature wrapper of features_only=True; pass that too")
    if features_only and kwargs.get("aux_logits"):
        raise ValueError("features_only=True returns feature maps only; it cannot be combined with aux_logits=True")
    _check_model_kwargs(model_cls, variant, {k: v for k, v in kwargs.items() if k != "config"})

    if pretrained and not cfg.has_weights:
        available = list_pretrained(f"{variant.split('.')[0]}*")
        hint = f"tags with weights: {', '.join(available)}" if available else "no weights are published for it yet"
        raise ValueError(f"{variant} has no pretrained weights ({hint}); load your own with checkpoint_path=...")

    model = model_cls(**kwargs)
    in_chans = getattr(model, "in_chans", cfg.input_size[0])
    min_size = getattr(model, "min_input_size", None)
    cfg = replace(
        cfg,
        num_classes=getattr(model, "num_classes", cfg.num_classes),
        input_size=(in_chans, *cfg.input_size[1:]),
        min_input_size=(in_chans, *min_size) if min_size else cfg.min_input_size,
    )
    model.pretrained_cfg = model.default_cfg = cfg.to_dict()
    model.model_args = {k: v for k, v in kwargs.items() if k not in ("config", "num_classes", "in_chans")}

    if pretrained:
        from .hub import download_pretrained

        name = full_model_name(cfg.architecture, cfg.tag) if cfg.architecture else variant
        path = download_pretrained(cfg, name, cache_dir)
        source = str(path) if cfg.file else f"{name} weights ({path})"
        state_dict = load_state_dict(path)
        if pretrained_filter_fn is not None:
            state_dict = pretrained_filter_fn(state_dict, model)
        load_pretrained_weights(model, state_dict, source=source)
        model.loaded_weights = str(path)  # which file the published weights came from (FID checks it)
    if checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)

    if features_only:
        model = build_feature_extractor(model, out_indices, feature_cls, feature_cfg)
    return model
