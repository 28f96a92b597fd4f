"""The one place that talks to the Hugging Face Hub, one job a module: ``errors`` holds the ``Weights*Error`` classes
and their hints, ``files`` fetches Hub files and checks them against their published sha256, ``urls`` keeps
URL-published checkpoints as safetensors, ``resolve`` turns a pretrained config into a weights file and reads Hub
configs, ``publish`` writes and uploads models in timm's layout. Imports run one way: ``resolve`` imports ``files`` and
``urls``, which import ``errors``."""

from .errors import CorruptWeightsError, WeightsDownloadError, WeightsNotCachedError
from .files import hub_cache_dir
from .publish import push_to_hub, save_pretrained
from .resolve import download_pretrained, read_hub_config

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
