"""The transforms a model trains and is evaluated with, built from its ``pretrained_cfg`` by timm's factory.

Training: the Inception crop of the papers (a random-resized crop of 8-100% of the area, aspect 3/4-4/3, Szegedy
et al. 2015, Section 6) at the model's input size and a flip, with colour jitter, RandAugment and random erasing as
options; CIFAR-size models take the CIFAR crop instead (4 pixels of zero padding, a random 32x32 crop, a flip).
The CIFAR crop is one function for both paths: the in-memory loader applies it to whole batches, the streamed
datasets to one image at a time, with the same draws from the image's own seed, so the same run gives the same
tensors either way. Evaluation: the weights' own preprocessing (resize by ``crop_pct``, centre crop,
interpolation, mean and std).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Augmentation", "CifarCrop", "draw_cifar_crop", "eval_transform", "normalize", "pad_crop_flip",
           "train_transform"]  # fmt: skip

INCEPTION_SCALE = (0.08, 1.0)
INCEPTION_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation options; ``crop`` is ``"inception"`` (random-resized crop), ``"pad"`` (CIFAR) or
    ``"auto"`` (``pad`` for models whose input is 64 pixels or smaller)."""

    crop: str = "auto"
    hflip: float = 0.5
    color_jitter: float | None = None
    auto_augment: str | None = None  # timm's syntax, e.g. "rand-m9-mstd0.5" for RandAugment
    random_erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    translate: int | None = None  # the CIFAR crop's padding, reflected (airbench: 2); None: size // 8 of zeros
    alternate_flip: bool = False  # airbench's flip: a random half of the images in even epochs, the other half in odd

    def crop_padding(self, size: int) -> tuple[int, str]:
        """The CIFAR crop's padding in pixels and its mode: ``translate`` pixels reflected, else size // 8 of zeros."""
        if self.translate is None:
            return size // 8, "constant"
        if not 0 <= self.translate < size:
            raise ValueError(f"--translate must be between 0 and the image size {size}, got {self.translate}")
        return self.translate, "reflect"

    def resolved_crop(self, size: int) -> str:
        if self.crop not in ("auto", "inception", "pad"):
            raise ValueError(f"the training crop must be auto, inception or pad, got {self.crop!r}")
        if self.crop == "auto":
            return "pad" if size <= 64 else "inception"
        return self.crop


def draw_cifar_crop(pad: int, hflip: float, generator: torch.Generator | None = None) -> tuple[int, int, bool]:
    """One image's CIFAR crop: its row and column offsets in the padded image and whether it is flipped, drawn in
    this order from ``generator`` (torch's global generator when None, which the datasets seed per image)."""
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return dy, dx, bool(torch.rand((), generator=generator) < hflip)


def pad_crop_flip(
    images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int, mode: str = "constant"
) -> torch.Tensor:
    """Pad a ``(n, c, h, w)`` batch by ``pad`` (zeros, or ``mode="reflect"``), crop each image back to ``h x w`` at
    its offsets ``(dy, dx)`` and flip those marked in ``flip``: all images at once (one gather), for batches and
    single images alike."""
    n, channels, height, width = images.shape
    if mode == "reflect" and pad:  # torch reflects floating-point tensors only
        padded = torch.nn.functional.pad(images.float(), (pad, pad, pad, pad), mode="reflect").to(images.dtype)
    else:
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = (dy.view(n, 1) + torch.arange(height).view(1, height)).view(n, 1, height, 1)
    cols = (dx.view(n, 1) + torch.arange(width).view(1, width)).view(n, 1, 1, width)
    batch = torch.arange(n).view(n, 1, 1, 1)
    cropped = padded[batch, torch.arange(channels).view(1, -1, 1, 1), rows, cols]
    return torch.where(flip.view(n, 1, 1, 1), cropped.flip(-1), cropped)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8`` images (``(c, h, w)`` or ``(n, c, h, w)``) to floats, ``(x / 255 - mean) / std``: torchvision's
    ``ToTensor`` + ``Normalize`` arithmetic, so both data paths give the same bits."""
    shape = (-1, 1, 1)
    return images.float().div(255).sub(torch.tensor(mean).view(shape)).div(torch.tensor(std).view(shape))


class CifarCrop:
    """The CIFAR crop of one ``uint8`` image tensor (``pad`` pixels of zero padding, a random crop back to its
    size, a flip with probability ``hflip``), drawn from torch's generator as ``draw_cifar_crop`` draws it."""

    def __init__(self, pad: int, hflip: float, mode: str = "constant") -> None:
        self.pad, self.hflip, self.mode = pad, hflip, mode

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        dy, dx, flip = draw_cifar_crop(self.pad, self.hflip)
        offsets = torch.tensor([dy]), torch.tensor([dx]), torch.tensor([flip])
        return pad_crop_flip(image[None], *offsets, self.pad, self.mode)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pad={self.pad}, hflip={self.hflip}, mode={self.mode!r})"


class _Normalize:
    """``normalize`` as a transform step."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return normalize(image, self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def _data_config(model: nn.Module, size: int | None) -> dict[str, Any]:
    from ...preprocessing import data_config

    config = data_config(model)
    if size is not None:
        config["input_size"] = (config["input_size"][0], size, size)
    return config


def train_transform(model: nn.Module, size: int | None = None, augmentation: Augmentation | None = None) -> Any:
    """PIL image -> normalized float tensor with the training augmentation, at ``size`` (default: the model's)."""
    from timm.data import create_transform

    augmentation = augmentation or Augmentation()
    config = _data_config(model, size)
    size = config["input_size"][-1]
    if augmentation.resolved_crop(size) == "pad":
        from torchvision import transforms

        if augmentation.alternate_flip:
            raise ValueError(
                "--alternate-flip needs the in-memory data path (whole batches that know their epoch); use "
                "--data-mode memory, or leave it off for streamed data"
            )
        # the crop draws first, so with no other option the draws are exactly the in-memory path's
        pad, mode = augmentation.crop_padding(size)
        steps = [transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor(),
                 CifarCrop(pad, augmentation.hflip, mode)]  # fmt: skip
        if augmentation.color_jitter:
            steps.append(transforms.ColorJitter(*(3 * [augmentation.color_jitter])))
        steps.append(_Normalize(config["mean"], config["std"]))
        if augmentation.random_erasing:
            steps.append(transforms.RandomErasing(augmentation.random_erasing))
        return transforms.Compose(steps)
    return create_transform(
        input_size=config["input_size"],
        is_training=True,
        scale=INCEPTION_SCALE,
        ratio=INCEPTION_RATIO,
        hflip=augmentation.hflip,
        color_jitter=augmentation.color_jitter or 0.0,
        auto_augment=augmentation.auto_augment,
        interpolation=config["interpolation"],
        mean=config["mean"],
        std=config["std"],
        re_prob=augmentation.random_erasing,
    )


def eval_transform(model: nn.Module, size: int | None = None) -> Any:
    """The weights' preprocessing: resize to ``size / crop_pct``, centre crop ``size``, normalize."""
    from timm.data import create_transform

    config = _data_config(model, size)
    return create_transform(
        input_size=config["input_size"],
        interpolation=config["interpolation"],
        mean=config["mean"],
        std=config["std"],
        crop_pct=config["crop_pct"],
        crop_mode=config.get("crop_mode", "center"),
    )
