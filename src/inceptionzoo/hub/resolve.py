"""Where a model's weights are: a pretrained config's ``file``, ``hf_hub_id`` (a Hub file, through ``files``) or
``url`` (a URL checkpoint, through ``urls``) as a local path, and the timm-layout ``config.json`` of a Hub repo or a
local folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from timm.models import PretrainedCfg

from .errors import WeightsDownloadError
from .files import hub_file
from .urls import url_file, url_to_safetensors

__all__ = ["download_pretrained", "read_hub_config"]


def download_pretrained(cfg: PretrainedCfg, name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local path of the weights ``cfg`` points at, downloading and checking them first if needed.

    ``cache_dir`` is the Hugging Face cache for Hub repos; checkpoints published as a URL go to ``url_cache_dir``.
    """
    if cfg.file:
        path = Path(cfg.file)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: weights file not found: {path}")
        return path
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        return hub_file(repo_id, cfg.hf_hub_filename or "model.safetensors", name, cache_dir, revision or None)
    if cfg.url:
        # int8 files hold packed quantized tensors, which safetensors cannot: they are kept as published
        return url_file(cfg.url, name) if getattr(cfg, "quantized", "") else url_to_safetensors(cfg.url, name)
    raise WeightsDownloadError(f"{name} has no published weights")


def read_hub_config(source: str, cache_dir: str | os.PathLike | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a timm-layout ``config.json`` from ``hf-hub:org/repo[@revision]`` or ``local-dir:/path``.

    Returns the config and where its weights are (``hf_hub_id`` or ``file``) for a pretrained config.
    """
    if source.startswith("local-dir:"):
        folder = Path(source[len("local-dir:") :]).expanduser()
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{source}: no config.json in {folder}")
        weights = {"file": str(folder / "model.safetensors")}
    else:
        repo = source[len("hf-hub:") :]
        repo_id, _, revision = repo.partition("@")
        config_path = hub_file(repo_id, "config.json", source, cache_dir, revision or None)
        weights = {"hf_hub_id": repo}
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{source}: {config_path.name} is not valid JSON ({error})") from error
    if not isinstance(config, dict) or "architecture" not in config:
        raise ValueError(f"{source}: {config_path.name} has no 'architecture' field")
    return config, weights
