"""Building blocks shared by every Inception family: conv-norm-activation, input checks and spatial arithmetic."""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import torch
from timm.layers import get_act_layer, get_norm_layer, make_divisible
from torch import nn

__all__ = [
    "ConvNormAct",
    "GoogLeNetOutputs",
    "InceptionOutputs",
    "check_head_arguments",
    "check_image_input",
    "conv_output_size",
    "minimum_input_size",
    "replace_config",
    "resolve_act_layer",
    "resolve_norm_layer",
    "scale_width",
    "spatial_output_size",
]

LayerSpec = str | Callable[..., nn.Module] | None


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


def resolve_norm_layer(norm_layer: LayerSpec, eps: float = 1e-3) -> Callable[..., nn.Module] | None:
    """Turn ``"batchnorm2d"``, a layer class or ``None`` into a constructor taking the channel count.

    BatchNorm's epsilon defaults to 1e-3, the value of the TensorFlow reference models (and timm/torchvision).
    """
    if norm_layer is None:
        return None
    layer = _timm_layer(get_norm_layer, "norm_layer", norm_layer) if isinstance(norm_layer, str) else norm_layer
    if isinstance(layer, type) and issubclass(layer, nn.modules.batchnorm._NormBase):
        return partial(layer, eps=eps)
    return layer


def resolve_act_layer(act_layer: LayerSpec) -> Callable[..., nn.Module] | None:
    """Turn ``"relu"``, a layer class or ``None`` into an activation constructor (timm's names are accepted)."""
    if act_layer is None:
        return None
    return _timm_layer(get_act_layer, "act_layer", act_layer) if isinstance(act_layer, str) else act_layer


def _timm_layer(lookup: Callable[[str], Any], argument: str, name: str) -> Any:
    # timm raises a bare KeyError for a name it does not know
    try:
        return lookup(name)
    except KeyError:
        examples = "'batchnorm2d', 'groupnorm', 'layernorm2d'" if argument == "norm_layer" else "'relu', 'gelu', 'silu'"
        raise ValueError(f"{argument}={name!r} is not a layer name timm knows (such as {examples})") from None


def _build_layer(argument: str, layer: Callable[..., nn.Module], *channels: int) -> nn.Module:
    """A norm layer for ``channels`` or an activation, or a ``ValueError`` naming the argument that cannot make one
    (a GroupNorm whose group count does not divide the channels, a callable that is not a layer)."""
    name = getattr(layer, "__name__", None) or getattr(getattr(layer, "func", None), "__name__", repr(layer))
    try:
        module = layer(*channels) if channels else _make_activation(layer)
    except (TypeError, ValueError, RuntimeError, AssertionError) as error:
        where = f" for {channels[0]} channels" if channels else ""
        raise ValueError(f"{argument} {name} cannot be built{where}: {error}") from error
    if not isinstance(module, nn.Module):
        raise TypeError(f"{argument} {name} must make an nn.Module, made {type(module).__name__}")
    return module


def _make_activation(act_layer: Callable[..., nn.Module]) -> nn.Module:
    # In-place activations save a copy of every feature map; fall back for layers without the option.
    try:
        return act_layer(inplace=True)
    except TypeError:
        return act_layer()


class ConvNormAct(nn.Module):
    """Convolution, optional normalization, optional activation: the unit every Inception branch is made of.

    The submodule names (``conv``, ``bn``) are those of timm's and torchvision's ``BasicConv2d``/``ConvNormAct``,
    so their checkpoints load unchanged. Without a norm layer the convolution gets a bias, as in GoogLeNet (2014).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        bias = norm_layer is None if bias is None else bias
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding, bias=bias)
        self.bn = _build_layer("norm_layer", norm_layer, out_chs) if norm_layer is not None else nn.Identity()
        self.act = _build_layer("act_layer", act_layer) if act_layer is not None else nn.Identity()

    @property
    def out_chs(self) -> int:
        return self.conv.out_channels

    def output_size(self, size: int, dim: int) -> int:
        return spatial_output_size(self.conv, size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def scale_width(channels: int, multiplier: float = 1.0) -> int:
    """Channels times a width multiplier, rounded to a multiple of 8 (and never below 8), as timm does."""
    return channels if multiplier == 1.0 else max(8, make_divisible(channels * multiplier, 8))


def replace_config(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a frozen config dataclass with ``overrides``; unknown names are a ``TypeError`` naming them."""
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"unknown argument(s) {', '.join(unknown)} for {type(config).__name__}; it has: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, ceil_mode: bool = False) -> int:
    """Spatial size after a convolution or pooling window, by PyTorch's own formula; below 1 means too small."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # PyTorch drops a last window that would start in the right padding
    return out


def _pick(value: int | tuple[int, ...], dim: int) -> int:
    return value[dim] if isinstance(value, tuple) else value


def spatial_output_size(module: nn.Module, size: int, dim: int) -> int:
    """Output size along spatial axis ``dim`` (0 = height, 1 = width) of a layer or block given its input size.

    Blocks that change the grid define ``output_size(size, dim)``; layers that keep it (activations,
    normalization, padded convolutions declared as such by their block) pass the size through.
    """
    if size <= 0:
        return size
    if isinstance(module, nn.Conv2d):
        k, s, p = (_pick(v, dim) for v in (module.kernel_size, module.stride, module.padding))
        d = _pick(module.dilation, dim)
        return conv_output_size(size, d * (k - 1) + 1, s, p)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        k, s, p = (_pick(v, dim) for v in (module.kernel_size, module.stride or module.kernel_size, module.padding))
        return conv_output_size(size, k, s, p, module.ceil_mode)
    output_size = getattr(module, "output_size", None)
    if callable(output_size):
        return output_size(size, dim)
    return size


def minimum_input_size(layers: list[nn.Module], limit: int = 4096) -> tuple[int, int]:
    """The smallest (height, width) for which every layer in ``layers`` (in forward order) gets a valid input."""

    def fits(size: int, dim: int) -> bool:
        for layer in layers:
            size = spatial_output_size(layer, size, dim)
            if size <= 0:
                return False
        return True

    result = []
    for dim in (0, 1):
        size = next((s for s in range(1, limit + 1) if fits(s, dim)), None)
        if size is None:
            raise ValueError(f"no input up to {limit} pixels fits these layers")
        result.append(size)
    return result[0], result[1]


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
    inside a convolution with a kernel-size or dtype error. Wrapped for ``torch.fx`` by the model files.
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
