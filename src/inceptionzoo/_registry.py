"""The model registry: names, weight tags and their pretrained configs, looked up the way timm users expect.

Model files register builder functions with ``register_model``; a module-level ``default_cfgs`` (made with
timm's ``generate_default_cfgs``) in the same file gives each architecture its ``arch.tag`` pretrained configs.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from timm.models import PretrainedCfg, split_model_name_tag

__all__ = [
    "InceptionPretrainedCfg",
    "UnknownModelError",
    "canonical_model_name",
    "close_names",
    "full_model_name",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "model_entrypoint",
    "register_model",
    "register_model_aliases",
    "split_model_name_tag",
]


@dataclass
class InceptionPretrainedCfg(PretrainedCfg):
    """timm's ``PretrainedCfg`` (source, preprocessing, head) plus the published accuracy of the weights and where
    in the papers the network comes from (metadata, not architecture: no ``create_model`` argument sets it)."""

    top1: float | None = None  # published ImageNet top-1 accuracy (%), single crop at input_size and crop_pct
    top5: float | None = None
    paper_row: str = ""  # e.g. "Table 3, row 5: Inception-v2 RMSProp"
    quantized: str = ""  # int8 weights: the quantized engine they were packed for ("fbgemm"); "" for float weights
    # int8 weights saved by another library: its module names -> the zoo's int8 graph's, one dotted component at a
    # time (None: a module the int8 graph leaves out, such as an aux head, whose tensors are dropped)
    quantized_keys: dict[str, str | None] | None = None
    dataset: str = ""  # what the weights were trained on, where a training run wrote it ("" for the published tags)
    fine_tuned_from: str = ""  # the weights a training run started from ("arch.tag"), "" when trained from scratch

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InceptionPretrainedCfg:
        """Build from a dict such as a timm ``config.json``'s ``pretrained_cfg``, ignoring fields we do not know."""
        known = {f.name for f in fields(cls)}
        cleaned = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**cleaned)


_model_entrypoints: dict[str, Callable[..., Any]] = {}
_model_aliases: dict[str, tuple[str, bool]] = {}  # alias -> (arch or arch.tag, deprecated)
_model_default_tags: dict[str, str] = {}  # arch -> the tag used when a name has none
_model_tags: dict[str, list[str]] = {}  # arch -> all its tags, default first
_pretrained_cfgs: dict[str, PretrainedCfg] = {}  # 'arch.tag' (or 'arch' when untagged) -> cfg


class UnknownModelError(ValueError):
    """A model name or weight tag that is not registered; the message lists the closest registered names."""


def full_model_name(arch: str, tag: str | None) -> str:
    """``arch.tag``, or ``arch`` alone when there is no tag: the inverse of ``split_model_name_tag``."""
    return f"{arch}.{tag}" if tag else arch


def register_model(
    fn: Callable[..., Any] | None = None, *, override: bool = False
) -> Callable[..., Any] | Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model builder under its function name, as timm's decorator of the same name does.

    If the builder's module defines ``default_cfgs`` (timm ``DefaultCfg`` objects keyed by architecture), its
    tags and pretrained configs are registered with it; otherwise the model gets a config with no weights.
    A name that is already registered is an error (torchvision raises too; timm only warns), unless the builder is
    registered with ``@register_model(override=True)``; the same builder imported again (a module reload) is fine.
    """
    if fn is None:
        return lambda builder: register_model(builder, override=override)
    arch = fn.__name__
    if arch in _model_aliases:
        raise ValueError(f"{arch!r} is already an alias of {_model_aliases[arch][0]}; choose another name")
    module_name = fn.__module__
    module = sys.modules.get(module_name)
    existing = _model_entrypoints.get(arch)
    if (
        existing is not None
        and not override
        and (existing.__module__, existing.__qualname__)
        != (
            module_name,
            fn.__qualname__,
        )
    ):
        raise ValueError(
            f"a model named {arch!r} is already registered (by {existing.__module__}); choose another name, or "
            "register with @register_model(override=True) to replace it"
        )
    _model_entrypoints[arch] = fn
    if module is not None and hasattr(module, "__all__") and arch not in module.__all__:
        module.__all__.append(arch)

    default_cfg = getattr(module, "default_cfgs", {}).get(arch) if module is not None else None
    tags: list[str] = []
    if default_cfg is not None:
        for tag in default_cfg.tags:
            cfg = replace(default_cfg.cfgs[tag], architecture=arch, tag=tag or None)
            _pretrained_cfgs[full_model_name(arch, tag)] = cfg
            tags.append(tag)
    else:
        _pretrained_cfgs[arch] = InceptionPretrainedCfg(architecture=arch)
        tags.append("")
    _model_tags[arch] = tags
    _model_default_tags[arch] = tags[0]
    return fn


def register_model_aliases(aliases: Mapping[str, str], deprecated: bool = False) -> None:
    """Other names for registered models, each mapped to ``arch`` or ``arch.tag``: the names people type from other
    libraries (torchvision's ``googlenet``) or, with ``deprecated=True``, timm's retired names (``tf_inception_v3``
    for ``inception_v3.tf_in1k``), which warn with timm's message. Aliases resolve wherever a model name is taken
    but ``list_models`` lists canonical names only, as timm's listings leave out its deprecated names."""
    for alias, target in aliases.items():
        if alias in _model_entrypoints:
            raise ValueError(f"{alias!r} is a registered model; an alias cannot take its name")
        arch, tag = split_model_name_tag(target)
        if arch not in _model_entrypoints or (tag and tag not in _model_tags[arch]):
            raise ValueError(f"alias {alias!r}: {target!r} is not a registered model or weight tag")
        _model_aliases[alias] = (target, deprecated)


def canonical_model_name(model_name: str, warn: bool = False) -> str:
    """``model_name`` with an alias replaced by the name it stands for; a tag given with the alias is kept
    (``googlenet.tv_in1k`` -> ``inception_v1_tv.tv_in1k``). With ``warn``, a deprecated alias warns as timm does."""
    arch, tag = split_model_name_tag(model_name)
    if arch not in _model_aliases:
        return model_name
    target, deprecated = _model_aliases[arch]
    target_arch, target_tag = split_model_name_tag(target)
    name = full_model_name(target_arch, tag or target_tag)
    if deprecated and warn:
        warnings.warn(f"Mapping deprecated model name {arch} to current {name}.", stacklevel=3)
    return name


def _natural_key(text: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower())]


def _to_list(value: str | Iterable[str] | None) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def _has_weights(full_name: str) -> bool:
    cfg = _pretrained_cfgs.get(full_name)
    return bool(cfg is not None and cfg.has_weights)


def list_models(
    filter: str | Iterable[str] = "",
    pretrained: bool = False,
    exclude_filters: str | Iterable[str] = (),
    include_tags: bool | None = None,
) -> list[str]:
    """Registered model names, filtered with shell-style wildcards (``"inception_v2*"``), in natural order.

    With ``pretrained=True`` only names with weights are returned, as ``arch.tag``. ``include_tags`` (default:
    the value of ``pretrained``) lists every ``arch.tag`` instead of architectures.
    """
    include_tags = pretrained if include_tags is None else include_tags
    names: list[str] = []
    for arch in _model_entrypoints:
        if include_tags:
            names.extend(full_model_name(arch, tag) for tag in _model_tags[arch])
        else:
            names.append(arch)
    patterns = _to_list(filter)
    if patterns:
        names = [
            n
            for n in names
            if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(split_model_name_tag(n)[0], p) for p in patterns)
        ]
    for pattern in _to_list(exclude_filters):
        names = [n for n in names if not fnmatch.fnmatchcase(n, pattern)]
    if pretrained:
        if include_tags:
            names = [n for n in names if _has_weights(n)]
        else:
            names = [n for n in names if any(_has_weights(full_model_name(n, t)) for t in _model_tags[n])]
    return sorted(set(names), key=_natural_key)


def list_pretrained(filter: str | Iterable[str] = "", exclude_filters: str | Iterable[str] = ()) -> list[str]:
    """Every ``arch.tag`` that has published weights, filtered like ``list_models``."""
    return list_models(filter, pretrained=True, exclude_filters=exclude_filters, include_tags=True)


def close_names(name: str, candidates: Iterable[str], count: int = 5) -> list[str]:
    """Up to ``count`` of ``candidates`` close to ``name`` (difflib), else those sharing its first six characters: the
    suggestions of ``UnknownModelError`` and of `inceptionzoo list` when nothing matches."""
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=count, cutoff=0.5)
    if not close:  # fall back to a shared prefix, useful for short or truncated names
        stem = name[:6]
        close = [c for c in candidates if c.startswith(stem)][:count]
    return close


def _unknown_model(name: str) -> UnknownModelError:
    arch, _ = split_model_name_tag(name)
    close = close_names(arch, _model_entrypoints)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownModelError(
        f"unknown model {name!r}.{hint} See inceptionzoo.list_models() for all {len(_model_entrypoints)} models."
    )


def _unknown_tag(arch: str, tag: str) -> UnknownModelError:
    tags = [full_model_name(arch, t) for t in _model_tags[arch] if t]
    real = ", ".join(tags) if tags else f"none: {arch} has no published weights yet"
    return UnknownModelError(f"{arch!r} has no weights tagged {tag!r}. Its tags: {real}.")


def is_model(model_name: str) -> bool:
    """True if the architecture part of ``model_name`` is registered or an alias (a tag, if given, is not checked)."""
    return split_model_name_tag(canonical_model_name(model_name))[0] in _model_entrypoints


def model_entrypoint(model_name: str) -> Callable[..., Any]:
    """The builder function registered for ``model_name`` (tag ignored); a clear error for unknown names."""
    arch = split_model_name_tag(canonical_model_name(model_name))[0]
    if arch not in _model_entrypoints:
        raise _unknown_model(model_name)
    return _model_entrypoints[arch]


def resolve_model_name(model_name: str) -> tuple[str, str]:
    """Split ``arch.tag`` (an alias replaced by its model) and check both parts; a missing tag becomes the
    architecture's default tag."""
    arch, tag = split_model_name_tag(canonical_model_name(model_name))
    if arch not in _model_entrypoints:
        raise _unknown_model(model_name)
    if not tag:
        tag = _model_default_tags[arch]
    elif tag not in _model_tags[arch]:
        raise _unknown_tag(arch, tag)
    return arch, tag


def get_pretrained_cfg(model_name: str) -> PretrainedCfg:
    """The pretrained config of ``arch`` (its default tag) or ``arch.tag``: preprocessing, sizes, provenance."""
    arch, tag = resolve_model_name(model_name)
    return replace(_pretrained_cfgs[full_model_name(arch, tag)])
