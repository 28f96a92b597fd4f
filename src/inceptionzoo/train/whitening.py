"""Patch whitening of a model's first convolution (airbench, Jordan 2024; Page's "How to train your ResNet"): its
filters become the eigenvectors of the training images' patch covariance, scaled by one over the square root of
their eigenvalues, so its output on training patches has (close to) the identity covariance, and they are frozen.

torch and timm have no such initialiser: it is written here, with torch's ``linalg.eigh`` doing the algebra.
"""

import torch
from torch import nn

__all__ = ["init_patch_whitening_", "patch_whitening_filters"]


def _patches(images: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Every ``kernel``-sized patch of a ``(n, c, h, w)`` batch as a row of ``c * kh * kw`` values."""
    channels = images.shape[1]
    patches = images.unfold(2, kernel[0], 1).unfold(3, kernel[1], 1)  # (n, c, h', w', kh, kw)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * kernel[0] * kernel[1])


def patch_whitening_filters(images: torch.Tensor, kernel: tuple[int, int], eps: float = 5e-4) -> torch.Tensor:
    """``(c * kh * kw, c, kh, kw)`` filters that whiten the patches of ``images`` (already normalised): the
    eigenvectors of their second-moment matrix, each divided by the square root of its eigenvalue plus ``eps``."""
    patches = _patches(images.double(), kernel)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps).view(-1, 1)
    return filters.view(-1, images.shape[1], *kernel).float()


@torch.no_grad()
def init_patch_whitening_(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4, freeze: bool = True) -> None:
    """Set ``conv``'s filters to whiten the patches of ``images`` and, as airbench does, the next as many to their
    negatives (so a following ReLU or GELU keeps both signs); the bias stays trainable, the filters are frozen.

    The convolution needs ``stride`` 1, no groups and at least ``in_channels * kh * kw`` filters."""
    kernel = conv.kernel_size
    dimension = conv.in_channels * kernel[0] * kernel[1]
    if conv.groups != 1 or conv.stride != (1, 1) or conv.dilation != (1, 1):
        raise ValueError(f"patch whitening needs a plain stride-1 convolution, got {conv}")
    if conv.out_channels < dimension:
        raise ValueError(
            f"patch whitening needs as many filters as a patch has values: {conv.in_channels} channels x "
            f"{kernel[0]}x{kernel[1]} = {dimension}, but the first convolution has {conv.out_channels}"
        )
    if images.shape[1] != conv.in_channels:
        raise ValueError(f"the images have {images.shape[1]} channels, the convolution takes {conv.in_channels}")
    filters = patch_whitening_filters(images, kernel, eps).to(conv.weight)
    conv.weight[:dimension] = filters
    mirrored = min(dimension, conv.out_channels - dimension)
    conv.weight[dimension : dimension + mirrored] = -filters[:mirrored]
    if freeze:
        conv.weight.requires_grad_(False)
