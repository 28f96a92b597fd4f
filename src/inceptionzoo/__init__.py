"""inceptionzoo: the Inception family for PyTorch, every ablation of the papers buildable by name.

``import inceptionzoo`` registers the models and nothing else: no training code, no network access.
"""

from . import models  # noqa: F401  (registers every model family)
from ._factory import create_model
from ._registry import (
    UnknownModelError,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    model_entrypoint,
    register_model,
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
from .hub import (
    CorruptWeightsError,
    WeightsDownloadError,
    WeightsNotCachedError,
    push_to_hub,
    save_pretrained,
)
from .inference import optimize_for_inference
from .layers import GoogLeNetOutputs, InceptionOutputs
from .preprocessing import create_transform, data_config

__version__ = "0.1.0"

__all__ = [
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
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_checkpoint",
    "load_state_dict",
    "model_entrypoint",
    "optimize_for_inference",
    "push_to_hub",
    "register_model",
    "save_pretrained",
    "split_model_name_tag",
]
