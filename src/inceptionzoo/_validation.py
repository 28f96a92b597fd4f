"""Argument and input checks: every model argument, config field and input batch is checked here, before torch
would fail on it with a message about its own internals (or not fail at all: a NaN dropout rate)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

import torch

__all__ = [
    "POOL_TYPES",
    "autocast_enabled",
    "check_argument_types",
    "check_config_fields",
    "check_head_arguments",
    "check_image_input",
    "check_known_names",
    "check_model_arguments",
    "check_stem_strides",
    "replace_config",
]


def check_known_names(owner: str, given: Any, accepted: Any, what: str = "argument", extra: str = "") -> None:
    """The one check for unknown names (model arguments, config fields, pretrained-config fields): a ``TypeError``
    naming each unknown one, the closest accepted name where one is close, and every accepted name."""
    import difflib

    accepted = set(accepted)
    unknown = sorted(set(given) - accepted)
    if not unknown:
        return
    close = {name: difflib.get_close_matches(name, accepted, n=1) for name in unknown}
    hints = "; ".join(f"did you mean {match[0]!r} for {name!r}?" for name, match in close.items() if match)
    raise TypeError(
        f"{owner} got unknown {what}(s) {', '.join(unknown)}{f' ({hints})' if hints else ''}; it accepts: "
        f"{', '.join(sorted(accepted))}{extra}"
    )


POOL_TYPES = ("avg", "max", "avgmax", "catavgmax", "fast", "fastavg", "fastmax", "fastavgmax", "fastcatavgmax", "")


def check_head_arguments(num_classes: int, global_pool: str) -> None:
    """The classifier's arguments: a known pool type (timm's), and unpooled output (``global_pool=""``) is a feature
    map that a linear classifier cannot follow."""
    arguments = {"num_classes": num_classes, "global_pool": global_pool}
    check_argument_types("the classifier", {"num_classes": int, "global_pool": str}, arguments)
    if num_classes < 0:
        raise ValueError(f"num_classes must be 0 (no classifier) or more, got {num_classes}")
    if global_pool.lower() not in POOL_TYPES:
        raise ValueError(f"global_pool must be one of {', '.join(map(repr, POOL_TYPES))}, got {global_pool!r}")
    if not global_pool and num_classes > 0:
        raise ValueError(
            f'global_pool="" returns unpooled feature maps; use it with num_classes=0 (got num_classes={num_classes})'
        )


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the annotated type: bool is not a number, a list passes for a tuple (JSON has no
    tuples), ``type[...]`` takes any callable (a layer class or factory)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin is type:
        return callable(value)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(item, args[0]) for item in value)
        return len(value) == len(args) and all(_matches(item, arg) for item, arg in zip(value, args, strict=True))
    if isinstance(origin, type):  # dict[str, Any] and the like: the container only
        return isinstance(value, origin)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this check does not model


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) and not typing.get_args(hint) else str(hint).replace("typing.", "")


def check_argument_types(owner: str, hints: dict[str, Any], values: dict[str, Any]) -> None:
    """Raise a ``TypeError`` naming the first argument in ``values`` whose value does not have its type in ``hints``
    (so that ``num_classes="10"`` fails here, in words, and not inside a torch layer's constructor). Only names in
    ``hints`` are looked at, so a function can pass its own ``locals()``."""
    for name, hint in hints.items():
        if name in values and not _matches(values[name], hint):
            value = values[name]
            raise TypeError(f"{owner}: {name} must be {_type_name(hint)}, got {type(value).__name__} {value!r}"[:300])


def check_model_arguments(model_class: type, arguments: dict[str, Any]) -> None:
    """The arguments of a model's ``__init__`` (its ``locals()``): types from its annotations, then the ranges torch
    would otherwise reject with its own words (or not at all: a NaN dropout rate, a negative BatchNorm epsilon)."""
    hints = typing.get_type_hints(model_class.__init__)
    hints.pop("return", None)
    check_argument_types(model_class.__name__, hints, arguments)
    if arguments.get("in_chans", 1) < 1:
        raise ValueError(f"in_chans must be 1 or more, got {arguments['in_chans']}")
    for name in ("drop_rate", "aux_drop_rate"):
        if name in arguments and not 0.0 <= arguments[name] <= 1.0:
            raise ValueError(f"{name} is a dropout probability, between 0 and 1; got {arguments[name]}")
    if "norm_eps" in arguments and not (math.isfinite(arguments["norm_eps"]) and arguments["norm_eps"] > 0):
        raise ValueError(f"norm_eps must be a positive number, got {arguments['norm_eps']}")


def check_config_fields(config: Any) -> None:
    """A config dataclass's field types (from its annotations) and its ``width_multiplier`` range."""
    hints = typing.get_type_hints(type(config))
    check_argument_types(
        type(config).__name__, hints, {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    )
    multiplier = getattr(config, "width_multiplier", 1.0)
    if not (math.isfinite(multiplier) and multiplier > 0):
        raise ValueError(f"width_multiplier must be a positive number, got {multiplier}")


def check_stem_strides(config: Any) -> None:
    """A config's ``stem_stride`` (1 or more) and ``stem_pool``, which only the non-CIFAR stems have: the ``"cifar"``
    stem has its own strides, so values other than the defaults (2, True) there are an error, not ignored."""
    if config.stem_stride < 1:
        raise ValueError(f"stem_stride must be 1 or more, got {config.stem_stride}")
    if config.stem == "cifar" and (config.stem_stride != 2 or not config.stem_pool):
        raise ValueError(
            f"stem_stride={config.stem_stride} and stem_pool={config.stem_pool} set the ImageNet stems' first stride "
            "and pool; the 'cifar' stem has neither (stride 1, no first pool already): leave them at 2 and True, or "
            "choose another stem"
        )


def autocast_enabled(x: torch.Tensor) -> bool:
    """Whether ``torch.autocast`` is on for ``x``'s device (it then casts inputs itself; never under TorchScript)."""
    if torch.jit.is_scripting():
        return False
    return torch.is_autocast_enabled(x.device.type)


def check_image_input(
    x: torch.Tensor, in_chans: int, min_height: int, min_width: int, dtype_reference: torch.Tensor | None = None
) -> None:
    """Raise a ``ValueError`` (wrong shape or size) or ``TypeError`` (wrong dtype) that says what was expected when
    ``x`` is not a batch the model can take.

    Called at the top of every model's forward so that a wrong input fails here, in words, rather than deep
    inside a convolution with a kernel-size or dtype error. Wrapped for ``torch.fx`` once, in ``models/_base.py``
    (models call it through ``InceptionNet.check_input``).
    ``dtype_reference`` is a tensor that follows the weights' dtype (a buffer, so that fx graphs keep reading it).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of shape (batch, {in_chans}, height, width), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"expected a 4-D input of shape (batch, {in_chans}, height, width), got {x.dim()}-D shape {list(x.shape)}"
        )
    if x.shape[1] != in_chans and x.shape[3] == in_chans:
        raise ValueError(
            f"expected {in_chans} input channels, got {x.shape[1]} (shape {list(x.shape)}): this looks like a "
            f"channels-last (batch, height, width, {in_chans}) array; pass x.permute(0, 3, 1, 2) (memory format "
            "channels_last is fine, the shape must be (batch, channels, height, width))"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"expected {in_chans} input channels, got {x.shape[1]} (shape {list(x.shape)}); "
            f"build the model with in_chans={x.shape[1]} to accept it"
        )
    if x.shape[2] < min_height or x.shape[3] < min_width:
        raise ValueError(
            f"input of {x.shape[2]}x{x.shape[3]} pixels is smaller than this model's minimum of "
            f"{min_height}x{min_width} pixels (height x width)"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"expected floating-point images, got {x.dtype}; convert them with x.float() and normalise them as "
            "inceptionzoo.create_transform(model) does (uint8 pixels go to [0, 1] first)"
        )
    if dtype_reference is not None and x.dtype != dtype_reference.dtype:
        weights = dtype_reference.dtype
        # autocast casts both sides of its ops to its own dtype, but never float64 ones
        if not autocast_enabled(x) or torch.float64 in (x.dtype, weights):
            raise TypeError(
                f"input dtype {x.dtype} differs from the model's weights ({weights}); cast one to the other "
                f"(x.to({weights}) or model.to({x.dtype})), or run under torch.autocast (which leaves float64 alone)"
            )


def replace_config(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a frozen config dataclass with ``overrides``; unknown names are a ``TypeError`` naming them."""
    check_known_names(type(config).__name__, overrides, (f.name for f in dataclasses.fields(config)))
    return dataclasses.replace(config, **overrides) if overrides else config
