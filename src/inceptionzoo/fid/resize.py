"""The three ways FID's images reach 299x299, each exactly as its reference library does it. FID depends on the
resize (clean-fid, Parmar et al. 2022), so every result and statistics file records the mode it was made with.

- ``pytorch-fid``: the image as floats in [0, 1], torch's bilinear ``interpolate`` (``align_corners=False``, no
  antialiasing), scaled to [-1, 1] (pytorch-fid).
- ``tf``: the 0-255 values resized by TensorFlow 1.x's bilinear ``resize_bilinear`` (``align_corners=False``, no
  half-pixel centres), then ``(x - 128) / 128``: the original TTUR code's graph, and torch-fidelity's.
- ``clean``: each channel of the ``uint8`` image resized by PIL's antialiased bicubic filter in float, clipped to
  0-255, then ``(x - 128) / 128`` (clean-fid's ``clean`` mode).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["DEFAULT_RESIZE_MODE", "FID_INPUT_SIZE", "RESIZE_MODES", "check_resize_mode", "resize_for_fid"]

FID_INPUT_SIZE = (299, 299)
RESIZE_MODES = ("pytorch-fid", "tf", "clean")
DEFAULT_RESIZE_MODE = "pytorch-fid"


def check_resize_mode(mode: str) -> str:
    """``mode`` if it is one of ``RESIZE_MODES``, else an error that lists them."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; the modes are {', '.join(RESIZE_MODES)}")
    return mode


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (batch, 3, height, width), uint8 or floats in [0, 1], got {shape}")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise ValueError(
            f"the images hold NaN or infinite values ({bad} of {images.shape[0]} images): their features and FID "
            "would be NaN; check how they were decoded or generated"
        )
    if not images.is_floating_point() and images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images or floats in [0, 1], got {images.dtype}")


def _tf1_source_coordinates(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TensorFlow 1.x's source pixels and weights along one axis: ``x = out * (in / out)`` in float32, its floor,
    the next pixel (clamped to the edge) and the fraction between them."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    position = torch.arange(out_size, dtype=torch.float32) * scale
    low = position.long()
    high = (low + 1).clamp_max(in_size - 1)
    return low, high, position - low.float()


def tf1_bilinear(images: torch.Tensor, size: tuple[int, int] = FID_INPUT_SIZE) -> torch.Tensor:
    """TensorFlow 1.x's ``resize_bilinear`` (``align_corners=False``) of float32 ``(n, c, h, w)`` images.

    Written by hand: torch's ``interpolate`` has only half-pixel centres, and TF 1.x's coordinates (``out * in /
    out``, the top-left corner of each pixel) are what the original FID graph and torch-fidelity use. The arithmetic
    is TensorFlow's, in its order (lerp along x, then y), so the result is exact to the bit on the CPU.
    """
    y_low, y_high, y_weight = _tf1_source_coordinates(size[0], images.shape[-2])
    x_low, x_high, x_weight = _tf1_source_coordinates(size[1], images.shape[-1])
    top, bottom = images[:, :, y_low, :], images[:, :, y_high, :]
    top_left, top_right = top[..., x_low], top[..., x_high]
    bottom_left, bottom_right = bottom[..., x_low], bottom[..., x_high]
    x_weight = x_weight.view(1, 1, 1, -1)
    upper = top_left + (top_right - top_left) * x_weight
    lower = bottom_left + (bottom_right - bottom_left) * x_weight
    return upper + (lower - upper) * y_weight.view(1, 1, -1, 1)


def _pil_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One ``(h, w, 3)`` uint8 image resized channel by channel in PIL's float mode ``F`` with its antialiased
    bicubic filter, clipped to 0-255: clean-fid's ``clean`` resize."""
    channels = [
        np.asarray(Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize(size[::-1], Image.BICUBIC))
        for c in range(3)
    ]
    return np.stack(channels).clip(0, 255)


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as they are; floats in [0, 1] rounded to the nearest of the 256 levels."""
    if images.dtype == torch.uint8:
        return images
    return (images.float() * 255).round().clamp(0, 255).to(torch.uint8)


def resize_for_fid(images: torch.Tensor, mode: str = DEFAULT_RESIZE_MODE) -> torch.Tensor:
    """The FID network's float32 input, ``(n, 3, 299, 299)`` in [-1, 1], from ``(n, 3, h, w)`` images (uint8, or
    floats in [0, 1]) by the resize ``mode`` (``RESIZE_MODES``). Each image is resized on its own, so the result does
    not depend on how images are batched.

    ``pytorch-fid`` reads uint8 images as ``x / 255``, as pytorch-fid's ``ToTensor`` does; ``tf`` reads floats as
    ``x * 255``; ``clean`` rounds floats to uint8 first, as it resizes the 8-bit image.
    """
    check_resize_mode(mode)
    _check_images(images)
    if mode == "pytorch-fid":
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return 2 * F.interpolate(x, size=FID_INPUT_SIZE, mode="bilinear", align_corners=False) - 1
    if mode == "tf":
        x = images.float() if images.dtype == torch.uint8 else images.float() * 255
        return (tf1_bilinear(x) - 128) / 128
    pixels = _as_uint8(images).permute(0, 2, 3, 1).numpy()
    resized = torch.from_numpy(np.stack([_pil_bicubic(image, FID_INPUT_SIZE) for image in pixels]))
    return (resized.float() - 128) / 128
