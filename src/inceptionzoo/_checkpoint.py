"""Reading checkpoint files safely and loading them into models with errors that name what does not fit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "load_checkpoint", "load_pretrained_weights", "load_state_dict"]

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


class CheckpointMismatchError(RuntimeError):
    """A checkpoint whose keys or shapes do not fit the model; the message lists every difference by name."""


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file, or a PyTorch file with ``torch.load(weights_only=True)`` (no pickled code).

    Training checkpoints that nest the weights under ``state_dict``/``model`` and DataParallel's ``module.``
    prefixes are unwrapped, so files written by timm, torchvision and common training scripts load as they are.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state_dict: Mapping = load_file(str(path), device="cpu")
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state_dict, Mapping):
            for key in _NESTED_KEYS:
                if isinstance(state_dict.get(key), Mapping):
                    state_dict = state_dict[key]
                    break
    if not isinstance(state_dict, Mapping) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise CheckpointMismatchError(f"{path} does not hold a state dict of tensors")
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _describe(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` listing missing keys, unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if not (missing or unexpected or shapes):
        return
    lines = [f"{source} does not fit {type(model).__name__}:"]
    if missing:
        lines.append(f"  missing from the checkpoint ({len(missing)}): {_describe(missing)}")
    if unexpected:
        lines.append(f"  not in the model ({len(unexpected)}): {_describe(unexpected)}")
    if shapes:
        lines.append(f"  different shapes ({len(shapes)}): {_describe(shapes, 6)}")
    if any(k.startswith("AuxLogits") or k.startswith("aux") for k in missing):
        lines.append("  (the model has an auxiliary head the checkpoint lacks: build it with aux_logits=False)")
    if any(k.split(".")[0] in ("fc", "classifier") for k in shapes):
        lines.append("  (the classifier differs: build the model with the checkpoint's num_classes)")
    raise CheckpointMismatchError("\n".join(lines))


def drop_unused_aux_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop auxiliary-head weights a checkpoint carries when the model was built without that head.

    timm's and torchvision's Inception-v3 checkpoints include ``AuxLogits.*``; a model built for inference
    (``aux_logits=False``, the default) has no use for them, exactly as in timm.
    """
    own = model.state_dict()
    aux_prefixes = {k.split(".")[0] for k in state_dict if k.split(".")[0].lower().startswith("aux")}
    unused = {p for p in aux_prefixes if not any(k.startswith(p + ".") for k in own)}
    return {k: v for k, v in state_dict.items() if k.split(".")[0] not in unused}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load weights from a local ``.safetensors`` or ``.pth`` file into ``model``, strictly by default.

    Every key must fit except an auxiliary head the model does not have. Differences are reported by name.
    """
    state_dict = drop_unused_aux_keys(model, load_state_dict(path))
    if strict:
        check_state_dict_fits(model, state_dict, source=str(path))
    else:
        own = model.state_dict()
        state_dict = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(state_dict, strict=strict)
    return model


def load_pretrained_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], weights_num_classes: int, source: str
) -> nn.Module:
    """Load published weights into ``model``, adapting what the caller changed and nothing else.

    A different ``num_classes`` re-initialises the classifiers (head and auxiliary heads); a different ``in_chans``
    adapts the first convolution with timm's ``adapt_input_conv``. Every other key must fit exactly.
    """
    from timm.models import adapt_input_conv

    state_dict = drop_unused_aux_keys(model, state_dict)
    first_conv = model.pretrained_cfg.get("first_conv")
    key = f"{first_conv}.weight" if first_conv else None
    if key and key in state_dict and state_dict[key].shape[1] != model.in_chans:
        state_dict[key] = adapt_input_conv(model.in_chans, state_dict[key])
    reset: list[str] = []
    if model.num_classes != weights_num_classes:
        classifiers = model.classifier_names() if hasattr(model, "classifier_names") else ["fc"]
        prefixes = tuple(f"{name}." for name in classifiers)
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}
        reset = [k for k in model.state_dict() if k.startswith(prefixes)]
    own = model.state_dict()
    check_state_dict_fits(model, {**{k: own[k] for k in reset}, **state_dict}, source=source)
    incompatible = model.load_state_dict(state_dict, strict=False)
    assert sorted(incompatible.missing_keys) == sorted(reset) and not incompatible.unexpected_keys
    return model
