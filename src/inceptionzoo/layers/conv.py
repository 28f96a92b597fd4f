"""The conv-norm-activation unit every Inception branch is made of, the norm and activation layers resolved from
timm's names, and width scaling."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from timm.layers import get_act_layer, get_norm_layer, make_divisible
from torch import nn

from ..sizes import spatial_output_size

__all__ = [
    "ConvNormAct",
    "LayerSpec",
    "conv_norm_act_factory",
    "resolve_act_layer",
    "resolve_norm_layer",
    "scale_width",
]

LayerSpec = str | Callable[..., nn.Module] | None


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


def conv_norm_act_factory(norm_layer: LayerSpec, norm_eps: float, act_layer: LayerSpec) -> Callable[..., ConvNormAct]:
    """``ConvNormAct`` with the model's norm and activation layers filled in: the one factory a family's blocks
    receive, so ``norm_layer`` / ``act_layer`` reach every convolution."""
    return partial(
        ConvNormAct, norm_layer=resolve_norm_layer(norm_layer, norm_eps), act_layer=resolve_act_layer(act_layer)
    )


def scale_width(channels: int, multiplier: float = 1.0) -> int:
    """Channels times a width multiplier, rounded to a multiple of 8 (and never below 8), as timm does."""
    return channels if multiplier == 1.0 else max(8, make_divisible(channels * multiplier, 8))
