"""``create_model``: the one entry point that builds any registered model by name, as in timm."""

from __future__ import annotations

import os
import typing
from dataclasses import replace
from typing import Any

from timm.layers import set_layer_config
from timm.models import PretrainedCfg
from torch import nn

from ._registry import (
    InceptionPretrainedCfg,
    UnknownModelError,
    canonical_model_name,
    full_model_name,
    get_pretrained_cfg,
    is_model,
    model_entrypoint,
    resolve_model_name,
)
from ._validation import check_argument_types

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
    feature_cls: str | type[nn.Module] | None = None,
    feature_cfg: dict[str, Any] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    pretrained_file: str | os.PathLike | None = None,
    pretrained_cfg: str | dict[str, Any] | PretrainedCfg | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    scriptable: bool | None = None,
    exportable: bool | None = None,
    no_jit: bool | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Build a model by name: ``"inception_v3"`` or ``"inception_v3.<tag>"`` for a given set of weights, or
    from a timm-layout repo: ``"hf-hub:org/repo[@revision]"`` or ``"local-dir:/path/to/folder"``.

    Args:
        model_name: a name from ``list_models``, optionally with a weight tag.
        pretrained: load the tag's published weights (downloaded once into the Hugging Face cache).
        num_classes: classifier size; 0 gives pooled features (``forward`` returns ``(B, num_features)``).
        in_chans: input channels (the first convolution is sized for it).
        drop_rate: dropout before the classifier.
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"``, ``"catavgmax"``, or ``""`` for unpooled features.
        features_only: return a feature extractor giving the maps at ``out_indices`` (``model.feature_info``).
        out_indices: which feature taps to return (default: all).
        feature_cls: timm's feature wrapper: ``"list"`` (default), ``"dict"``, ``"hook"``, ``"fx"``, ``"getter"``.
        feature_cfg: timm's feature options (``out_indices``, ``feature_cls`` and the wrapper's own arguments).
        checkpoint_path: a local ``.safetensors`` or ``.pth`` file to load after building (strict: every key fits,
            as timm's ``checkpoint_path``; for resuming or using a model of this exact shape).
        pretrained_file: a local file to start from, loaded as published weights are (a different ``num_classes``
            gets a new classifier, a different ``in_chans`` an adapted first convolution): fine-tuning from your
            own file. The same as timm's ``pretrained=True, pretrained_cfg_overlay={"file": ...}``.
        pretrained_cfg: as in timm: a weight tag (``"tv_in1k"``, the same as ``"name.tv_in1k"``), or a whole
            pretrained config (a dict or ``PretrainedCfg``) used instead of the registered one.
        pretrained_cfg_overlay: fields replacing those of the tag's pretrained config.
        cache_dir: where downloads are cached (default: ``HF_HUB_CACHE`` / ``HF_HOME/hub``).
        scriptable: timm's layer flag (``timm.layers.set_layer_config``) while building: TorchScript-friendly layers.
        exportable: timm's layer flag while building: layers that export (ONNX).
        no_jit: timm's layer flag while building: no JIT-scripted activations.
        **model_kwargs: the model's own arguments (e.g. ``aux_logits=True``); unknown names are an error.
    """
    check_argument_types("create_model", typing.get_type_hints(create_model), locals())
    if not model_name.startswith(("hf-hub:", "local-dir:")):
        model_name = canonical_model_name(model_name, warn=True)  # googlenet, timm's retired names
    if pretrained_file is not None:
        if checkpoint_path is not None:
            raise ValueError("pass either pretrained_file (adapted to the model) or checkpoint_path (strict), not both")
        pretrained, pretrained_cfg_overlay = True, {**(pretrained_cfg_overlay or {}), "file": str(pretrained_file)}
    passed = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate, "global_pool": global_pool}
    model_kwargs.update({k: v for k, v in passed.items() if v is not None})
    if isinstance(pretrained_cfg, str):  # timm: a string is the weight tag
        if model_name.startswith(("hf-hub:", "local-dir:")):
            raise ValueError(f"pretrained_cfg={pretrained_cfg!r} names a weight tag; {model_name} has its own weights")
        arch, tag = resolve_model_name(model_name)
        if model_name != arch and tag != pretrained_cfg:
            raise ValueError(f"{model_name} and pretrained_cfg={pretrained_cfg!r} name two different weight tags")
        model_name, pretrained_cfg = full_model_name(arch, pretrained_cfg), None
    if model_name.startswith(("hf-hub:", "local-dir:")):
        variant, resolved_cfg, model_kwargs = _from_hub_config(model_name, model_kwargs, cache_dir)
    else:
        variant = full_model_name(*resolve_model_name(model_name))
        resolved_cfg = get_pretrained_cfg(variant)
    if pretrained_cfg is not None:  # a whole config of the caller's, as timm takes it
        given = pretrained_cfg.to_dict() if isinstance(pretrained_cfg, PretrainedCfg) else pretrained_cfg
        resolved_cfg = InceptionPretrainedCfg.from_dict({**resolved_cfg.to_dict(), **given})
    build = model_entrypoint(resolved_cfg.architecture or variant)
    quantized = (pretrained_cfg_overlay or {}).get("quantized", getattr(resolved_cfg, "quantized", ""))
    if pretrained and quantized:  # int8 weights: the float architecture, then deploy loads them into its int8 graph
        return _create_int8(
            build, variant, resolved_cfg, pretrained_cfg_overlay, features_only or checkpoint_path is not None,
            cache_dir, dict(scriptable=scriptable, exportable=exportable, no_jit=no_jit), model_kwargs,
        )  # fmt: skip
    try:
        with set_layer_config(scriptable=scriptable, exportable=exportable, no_jit=no_jit):
            return build(
                pretrained=pretrained,
                pretrained_cfg_overlay=pretrained_cfg_overlay,
                features_only=features_only,
                out_indices=out_indices,
                feature_cls=feature_cls,
                feature_cfg=feature_cfg,
                checkpoint_path=checkpoint_path,
                cache_dir=cache_dir,
                pretrained_cfg=resolved_cfg,
                **model_kwargs,
            )
    except (TypeError, ValueError) as error:
        if not model_name.startswith(("hf-hub:", "local-dir:")):
            raise
        raise type(error)(
            f"{model_name}: the model arguments of its config.json (with yours) do not build "
            f"{resolved_cfg.architecture}: {error}"
        ) from error


def _create_int8(
    build: typing.Callable[..., nn.Module],
    variant: str,
    resolved_cfg: PretrainedCfg,
    overlay: dict[str, Any] | None,
    other_use: bool,
    cache_dir: str | os.PathLike | None,
    layer_config: dict[str, bool | None],
    model_kwargs: dict[str, Any],
) -> nn.Module:
    """The int8 model of a quantized tag: the float model built without weights, then handed to
    ``deploy.int8.load_quantized`` with the published int8 tensors. ``other_use``: feature maps or a checkpoint were
    asked for, which an int8 graph cannot give or take."""
    from ._builder import resolve_pretrained_cfg
    from .checkpoint import load_quantized_state_dict
    from .deploy.int8 import load_quantized
    from .hub import download_pretrained

    cfg = resolve_pretrained_cfg(variant, resolved_cfg, overlay)
    name = full_model_name(cfg.architecture, cfg.tag) if cfg.architecture else variant
    with set_layer_config(**layer_config):
        model = build(pretrained=False, pretrained_cfg=cfg, cache_dir=cache_dir, **model_kwargs)
    if other_use or getattr(model, "num_classes", cfg.num_classes) != cfg.num_classes:
        float_tag = name.replace("_int8", "")
        raise ValueError(
            f"{name} is an int8 inference model: it keeps its {cfg.num_classes} classes and cannot give feature "
            f"maps or take a checkpoint; fine-tune or extract features from the float weights ({float_tag}), then "
            "inceptionzoo.quantize the result"
        )
    path = download_pretrained(cfg, name, cache_dir)
    return load_quantized(model, load_quantized_state_dict(path), cfg.quantized, source=f"{name} weights ({path})")


def _from_hub_config(
    source: str, model_kwargs: dict[str, Any], cache_dir: str | os.PathLike | None
) -> tuple[str, InceptionPretrainedCfg, dict[str, Any]]:
    """The architecture, pretrained config and model arguments of a timm-layout repo or folder."""
    from .hub import read_hub_config

    config, weights = read_hub_config(source, cache_dir)
    arch = config["architecture"]
    if not is_model(arch):
        raise UnknownModelError(f"{source}: its config.json names the architecture {arch!r}, which inceptionzoo lacks")
    stored = config.get("pretrained_cfg") or {}
    model_args = config.get("model_args") or {}
    if not isinstance(stored, dict) or not isinstance(model_args, dict):
        raise ValueError(f"{source}: config.json's pretrained_cfg and model_args must be JSON objects")
    if source.startswith("hf-hub:"):
        _check_hub_weights_fields(source, stored)
    # from_dict ignores fields it does not know (those of newer timm versions), as timm does
    cfg = InceptionPretrainedCfg.from_dict({**stored, "architecture": arch, **weights})
    if source.startswith("hf-hub:"):
        cfg = replace(cfg, file=None)
    else:  # local-dir: the folder's own model.safetensors
        cfg = replace(cfg, hf_hub_id=None, hf_hub_filename=None)
    cfg = replace(cfg, num_classes=config.get("num_classes", cfg.num_classes), url=None, source=source)
    kwargs = {**model_args, **model_kwargs}
    kwargs.setdefault("num_classes", cfg.num_classes)
    if config.get("global_pool") and "global_pool" not in kwargs:
        kwargs["global_pool"] = config["global_pool"]
    return source, cfg, kwargs


def _check_hub_weights_fields(source: str, stored: dict[str, Any]) -> None:
    """Refuse a Hub repo's pretrained config that names weights outside the repo (a local file, a URL, another
    repo, a path out of it): the weights of ``hf-hub:org/x`` are that repo's own files, hash-checked."""
    from .hub.files import is_repo_filename

    repo_id = source[len("hf-hub:") :].partition("@")[0]
    for field in ("file", "url", "hf_hub_id", "hf_hub_filename"):
        value = stored.get(field)
        if value in (None, "") or (field, value) == ("hf_hub_id", repo_id):
            continue  # nothing, or the repo's own id (as older timm configs record it)
        if field == "hf_hub_filename" and is_repo_filename(value):
            continue
        raise ValueError(
            f"{source}: its config.json sets pretrained_cfg.{field} to {value!r}, which is outside the repo "
            f"{repo_id}; a Hub repo's config may only name a file of its own repo (pretrained_cfg.hf_hub_filename, a "
            "relative path), so its weights are the repo's own, checked against their published hash"
        )
