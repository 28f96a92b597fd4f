"""Checkpoints published only as a URL (torchvision's ``.pth``): fetched once through ``torch.hub`` with its
hash-prefix check, read with ``weights_only=True`` and kept as safetensors in torch.hub's checkpoints folder.
int8 checkpoints (packed quantized tensors, which safetensors cannot hold) are kept as the published file."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import torch

from .errors import (
    CorruptWeightsError,
    WeightsDownloadError,
    WeightsNotCachedError,
    is_offline,
    offline_hint,
    unresolvable_host,
)

__all__ = ["url_cache_dir", "url_file", "url_to_safetensors"]

_URL_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision's file names end in -<sha256 prefix>.pth


def url_cache_dir() -> Path:
    """Where checkpoints published as a URL are kept: torch.hub's ``checkpoints`` folder (``TORCH_HOME``), beside
    torchvision's own downloads, and not inside the Hugging Face cache, whose tools take every folder there for a
    repo."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _checked_file_name(url: str, name: str) -> tuple[str, str | None]:
    file_name = Path(urlparse(url).path).name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", file_name) or file_name.startswith("."):
        raise WeightsDownloadError(f"{name}: refusing the unusual checkpoint file name {file_name!r} in {url}")
    match = _URL_HASH.search(file_name)
    return file_name, match.group(1) if match else None


def _has_hash(path: Path, hash_prefix: str | None) -> bool:
    if hash_prefix is None or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest().startswith(hash_prefix)


def _fetch(url: str, name: str, download: Path, hash_prefix: str | None) -> None:
    """torch.hub's download with its hash-prefix check, its failures said for people."""
    try:
        torch.hub.download_url_to_file(url, str(download), hash_prefix=hash_prefix, progress=False)
    except RuntimeError as error:  # torch.hub's hash-prefix check
        raise CorruptWeightsError(
            f"{name}: {url} does not match its published hash ({error}); nothing was cached"
        ) from error
    except OSError as error:
        unresolved = unresolvable_host(url)
        reason = f"cannot resolve {unresolved} (no network or no DNS here)" if unresolved else str(error)
        raise WeightsDownloadError(
            f"{name}: downloading {url} failed: {reason}; try again with network access, or {offline_hint(name)}"
        ) from error


def url_file(url: str, name: str) -> Path:
    """The file published at ``url`` itself, fetched once into torch.hub's checkpoints folder (where torchvision keeps
    it too, so either library's download serves both) with its hash prefix checked."""
    file_name, hash_prefix = _checked_file_name(url, name)
    folder = url_cache_dir()
    target = folder / file_name
    if _has_hash(target, hash_prefix) or (target.is_file() and hash_prefix is None):
        return target
    if is_offline():
        raise WeightsNotCachedError(f"{name}: {file_name} is not in the cache", name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        download = Path(scratch) / file_name
        _fetch(url, name, download, hash_prefix)
        os.replace(download, target)  # atomic: a crash never leaves a half-written file under the final name
    return target


def _converted_from(path: Path) -> str | None:
    """The URL a converted file records it was made from (None for files written before it was recorded, whose
    name's hash prefix is their key); an unreadable file is converted again."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("source_url")
    except Exception:  # safetensors raises its own error types for damaged headers
        return ""


def url_to_safetensors(url: str, name: str) -> Path:
    """Fetch a PyTorch checkpoint published at ``url`` once, check its hash prefix, and keep it as safetensors.

    A copy torchvision already downloaded to the same folder is used when its hash prefix matches.
    """
    from safetensors.torch import save_file

    from ..checkpoint import load_state_dict

    file_name, hash_prefix = _checked_file_name(url, name)
    folder = url_cache_dir()
    target = folder / (Path(file_name).stem + ".safetensors")
    if target.is_file() and _converted_from(target) in (url, None):
        return target
    torchvision_copy = folder / file_name
    have_copy = _has_hash(torchvision_copy, hash_prefix)
    if is_offline() and not have_copy:
        raise WeightsNotCachedError(f"{name}: {file_name} is not in the cache", name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        download = torchvision_copy if have_copy else Path(scratch) / file_name
        if not have_copy:
            _fetch(url, name, download, hash_prefix)
        state_dict = load_state_dict(download)  # torch.load(weights_only=True): no pickled code runs
        converted = Path(scratch) / target.name
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(converted), metadata={"source_url": url})
        os.replace(converted, target)  # atomic: a crash never leaves a half-written file under the final name
    return target
