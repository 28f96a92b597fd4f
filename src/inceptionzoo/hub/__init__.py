"""The one place that talks to the Hugging Face Hub: ``files`` fetches and verifies published weights,
``urls`` keeps URL-published checkpoints as safetensors, ``publish`` writes and uploads models in timm's layout."""

from .files import (
    CorruptWeightsError,
    WeightsDownloadError,
    WeightsNotCachedError,
    download_pretrained,
    hub_cache_dir,
    read_hub_config,
)
from .publish import push_to_hub, save_pretrained

__all__ = [
    "CorruptWeightsError",
    "WeightsDownloadError",
    "WeightsNotCachedError",
    "download_pretrained",
    "hub_cache_dir",
    "push_to_hub",
    "read_hub_config",
    "save_pretrained",
]
