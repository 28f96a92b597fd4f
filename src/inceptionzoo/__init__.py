"""inceptionzoo: the Inception family for PyTorch, every ablation of the papers buildable by name.

``import inceptionzoo`` is instant: torch, timm and the model families are imported (and the models registered) the
first time a public name is used, so that ``inceptionzoo --help`` and ``--version`` answer at once. No training code
and no network access either way. Written by hand (PEP 562 ``__getattr__``): neither torch nor timm has a lazy
module helper to reuse.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

# public name -> the module that defines it
_EXPORTS = {
    "CheckpointError": ".checkpoint",
    "CheckpointMismatchError": ".checkpoint",
    "CorruptCheckpointError": ".checkpoint",
    "UnsafeCheckpointError": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "load_state_dict": ".checkpoint",
    "create_model": "._factory",
    "CorruptWeightsError": ".hub",
    "WeightsDownloadError": ".hub",
    "WeightsNotCachedError": ".hub",
    "push_to_hub": ".hub",
    "save_pretrained": ".hub",
    "UnknownModelError": "._registry",
    "get_pretrained_cfg": "._registry",
    "is_model": "._registry",
    "list_models": "._registry",
    "list_pretrained": "._registry",
    "model_entrypoint": "._registry",
    "register_model": "._registry",
    "register_model_aliases": "._registry",
    "split_model_name_tag": "._registry",
    "create_transform": ".preprocessing",
    "data_config": ".preprocessing",
    "optimize_for_inference": ".deploy",
    "quantize": ".deploy",
    "export_onnx": ".deploy",
    "GoogLeNetOutputs": ".layers",
    "InceptionOutputs": ".layers",
}
_SUBMODULES = {
    "checkpoint",
    "complexity",
    "deploy",
    "fid",
    "hub",
    "layers",
    "models",
    "precision",
    "preprocessing",
    "sizes",
    "train",
}

__all__ = [  # the names of _EXPORTS (tested)
    "CheckpointError",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "CorruptWeightsError",
    "GoogLeNetOutputs",
    "InceptionOutputs",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "WeightsDownloadError",
    "WeightsNotCachedError",
    "__version__",
    "create_model",
    "create_transform",
    "data_config",
    "export_onnx",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_checkpoint",
    "load_state_dict",
    "model_entrypoint",
    "optimize_for_inference",
    "push_to_hub",
    "quantize",
    "register_model",
    "register_model_aliases",
    "save_pretrained",
    "split_model_name_tag",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(".models", __name__)  # registers every model family before any name is looked up
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


if TYPE_CHECKING:  # what type checkers, IDEs and the API reference read
    from ._factory import create_model
    from ._registry import (
        UnknownModelError,
        get_pretrained_cfg,
        is_model,
        list_models,
        list_pretrained,
        model_entrypoint,
        register_model,
        register_model_aliases,
        split_model_name_tag,
    )
    from .checkpoint import (
        CheckpointError,
        CheckpointMismatchError,
        CorruptCheckpointError,
        UnsafeCheckpointError,
        load_checkpoint,
        load_state_dict,
    )
    from .deploy import export_onnx, optimize_for_inference, quantize
    from .hub import CorruptWeightsError, WeightsDownloadError, WeightsNotCachedError, push_to_hub, save_pretrained
    from .layers import GoogLeNetOutputs, InceptionOutputs
    from .preprocessing import create_transform, data_config
