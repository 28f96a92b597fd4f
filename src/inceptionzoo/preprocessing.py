"""The preprocessing a model's weights expect, through timm's own data-config and transform factories."""

from typing import Any

from torch import nn

__all__ = ["ConvertMode", "create_transform", "data_config"]

_MODES = {1: "L", 3: "RGB"}


class ConvertMode:
    """Convert a PIL image to the mode the model takes (``"L"`` for ``in_chans=1``, ``"RGB"`` for 3), so that a
    grayscale photo reaches an RGB model, or a colour photo a grayscale one, with the right number of channels."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, image: Any) -> Any:
        return image.convert(self.mode) if getattr(image, "mode", self.mode) != self.mode else image

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mode!r})"


def data_config(model: nn.Module, **overrides: Any) -> dict[str, Any]:
    """Input size, interpolation, mean, std and crop of ``model``'s weights (timm's ``resolve_model_data_config``).

    A model built with another ``in_chans`` than its weights' gets a mean and std per input channel: the average
    of the RGB values for one channel, the RGB values repeated otherwise (as timm's ``adapt_input_conv`` repeats the
    RGB filters)."""
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    config.update(overrides)
    channels = config["input_size"][0]
    for key in ("mean", "std"):
        values = tuple(config[key])
        if len(values) != channels:
            config[key] = (
                (sum(values) / len(values),) if channels == 1 else tuple(values[i % 3] for i in range(channels))
            )
    return config


def create_transform(model: nn.Module, is_training: bool = False, **overrides: Any) -> Any:
    """The torchvision transform that prepares PIL images for ``model``: the image converted to the model's mode,
    then resize, center crop, normalize (eval), or timm's training augmentation with ``is_training=True``."""
    from timm.data import create_transform as timm_create_transform
    from torchvision import transforms

    config = data_config(model, **overrides)
    transform = timm_create_transform(**config, is_training=is_training)
    mode = _MODES.get(config["input_size"][0])
    if mode is None:
        return transform
    steps = transform.transforms if isinstance(transform, transforms.Compose) else [transform]
    return transforms.Compose([ConvertMode(mode), *steps])
