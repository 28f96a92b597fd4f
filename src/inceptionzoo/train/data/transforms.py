"""The transforms a model trains and is evaluated with, built from its ``pretrained_cfg`` by timm's factory.

Training: the Inception crop of the papers (a random-resized crop of 8-100% of the area, aspect 3/4-4/3, Szegedy
et al. 2015, Section 6) at the model's input size and a flip, with colour jitter, RandAugment and random erasing as
options; CIFAR-size models take the CIFAR crop instead (4 pixels of zero padding, a random 32x32 crop, a flip),
the augmentation the in-memory path does on whole batches. Evaluation: the weights' own preprocessing (resize by
``crop_pct``, centre crop, interpolation, mean and std).
"""

from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["Augmentation", "eval_transform", "train_transform"]

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

    def resolved_crop(self, size: int) -> str:
        if self.crop not in ("auto", "inception", "pad"):
            raise ValueError(f"the training crop must be auto, inception or pad, got {self.crop!r}")
        if self.crop == "auto":
            return "pad" if size <= 64 else "inception"
        return self.crop


def _data_config(model: nn.Module, size: int | None) -> dict[str, Any]:
    from ...data import data_config

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

        steps = [transforms.Resize(size), transforms.CenterCrop(size), transforms.RandomCrop(size, padding=size // 8)]
        if augmentation.hflip:
            steps.append(transforms.RandomHorizontalFlip(augmentation.hflip))
        if augmentation.color_jitter:
            steps.append(transforms.ColorJitter(*(3 * [augmentation.color_jitter])))
        steps += [transforms.ToTensor(), transforms.Normalize(config["mean"], config["std"])]
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
