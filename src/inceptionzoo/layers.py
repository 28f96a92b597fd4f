"""Building blocks shared by every Inception family: conv-norm-activation, input checks and spatial arithmetic."""

from __future__ import annotations

import dataclasses
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
    layer = get_norm_layer(norm_layer) if isinstance(norm_layer, str) else norm_layer
    if isinstance(layer, type) and issubclass(layer, nn.modules.batchnorm._NormBase):
        return partial(layer, eps=eps)
    return layer


def resolve_act_layer(act_layer: LayerSpec) -> Callable[..., nn.Module] | None:
    """Turn ``"relu"``, a layer class or ``None`` into an activation constructor (timm's names are accepted)."""
    if act_layer is None:
        return None
    return get_act_layer(act_layer) if isinstance(act_layer, str) else act_layer


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
        self.bn = norm_layer(out_chs) if norm_layer is not None else nn.Identity()
        self.act = _make_activation(act_layer) if act_layer is not None else nn.Identity()

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


def check_head_arguments(num_classes: int, global_pool: str) -> None:
    """Unpooled output (``global_pool=""``) is a feature map; a linear classifier cannot follow it."""
    if num_classes < 0:
        raise ValueError(f"num_classes must be 0 (no classifier) or more, got {num_classes}")
    if not global_pool and num_classes > 0:
        raise ValueError(
            f'global_pool="" returns unpooled feature maps; use it with num_classes=0 (got num_classes={num_classes})'
        )


def check_image_input(x: torch.Tensor, in_chans: int, min_height: int, min_width: int) -> None:
    """Raise a ``ValueError`` that says what was expected when ``x`` is not a batch the model can take.

    Called at the top of every model's forward so that a wrong input fails here, in words, rather than deep
    inside a convolution with a kernel-size error. Wrapped for ``torch.fx`` by the model files.
    """
    if x.dim() != 4:
        raise ValueError(
            f"expected a 4-D input of shape (batch, {in_chans}, height, width), got {x.dim()}-D shape {list(x.shape)}"
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
