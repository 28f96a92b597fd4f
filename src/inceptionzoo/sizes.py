"""Spatial arithmetic: the output size of a layer or block for an input size, and from it the smallest input a
stack of layers takes (PyTorch's own formulas, so the minimum sizes the models state are exact)."""

from __future__ import annotations

from torch import nn

__all__ = ["conv_output_size", "minimum_input_size", "spatial_output_size"]


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
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):  # any input pools to its output size
        target = _pick(module.output_size, dim)
        return size if target is None else target
    if isinstance(module, nn.ConstantPad2d):  # ZeroPad2d is one too
        left, right, top, bottom = module.padding  # F.pad's order: last axis (width) first
        return size + (top + bottom if dim == 0 else left + right)
    output_size = getattr(module, "output_size", None)
    if callable(output_size):
        return output_size(size, dim)
    if isinstance(module, nn.Sequential):
        for layer in module:
            size = spatial_output_size(layer, size, dim)
        return size
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
