"""Fetching published weights into the Hugging Face cache, checking them, and publishing models in timm's layout.

Weights come through ``huggingface_hub`` (``hf_hub_download``) from Hub repos, or, for checkpoints published only
as a URL (torchvision's), through ``torch.hub.download_url_to_file`` with its hash-prefix check, converted once to
safetensors in the cache. ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are read when a
download is asked for, so setting them at run time works.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from timm.models import PretrainedCfg

__all__ = [
    "CorruptWeightsError",
    "WeightsDownloadError",
    "WeightsNotCachedError",
    "download_pretrained",
    "hub_cache_dir",
    "read_hub_config",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")
# a branch, tag or commit: path segments of letters, digits, '.', '_' and '-' that start with a letter or digit
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_URL_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision's file names end in -<sha256 prefix>.pth


class WeightsDownloadError(RuntimeError):
    """The weights could not be fetched (server error, dropped connection, missing repo or file)."""


class WeightsNotCachedError(WeightsDownloadError):
    """Offline (``HF_HUB_OFFLINE=1``) and the weights are not in the cache."""


class CorruptWeightsError(WeightsDownloadError):
    """A downloaded file does not match its published hash; it has been removed from the cache."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or _env_flag("HF_HUB_OFFLINE")


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else huggingface_hub's default."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _how_to_fetch(name: str) -> str:
    return (
        f"run `inceptionzoo download {name}` on a machine with network access and copy its cache folder "
        f"({hub_cache_dir()}) here, or unset HF_HUB_OFFLINE"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_hub_file(path: Path, name: str) -> Path:
    """Check a cached Hub file against the sha256 it is stored under (the Hub names LFS blobs by it)."""
    blob = path.resolve()
    if not _SHA256.fullmatch(blob.name):
        return path  # a small git-stored file (config.json): its name is a git hash, nothing to compare
    actual = _sha256(blob)
    if actual != blob.name:
        blob.unlink(missing_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink(missing_ok=True)
        raise CorruptWeightsError(
            f"the cached weights of {name} are corrupt (sha256 {actual[:12]}..., published {blob.name[:12]}...); "
            f"the bad file was removed from the cache, so the next call downloads it again "
            f"(or run `inceptionzoo download {name}`)"
        )
    return path


def check_repo_reference(repo_id: str, revision: str | None, name: str) -> None:
    """Refuse repo ids and revisions that are not plain names before any request is made or any cache path built:
    no path traversal (``..``), no absolute paths, no URL syntax (scheme, host, query, fragment)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(
            f"{name}: {repo_id!r} is not a Hub repo id ('org/name' of letters, digits, '-', '_' and '.'): {error}"
        ) from None
    if revision is not None and not (_REVISION.fullmatch(revision) and ".." not in revision):
        raise ValueError(
            f"{name}: {revision!r} is not a revision (a branch, tag or commit of letters, digits, '.', '_', '-' and "
            "'/', without '..')"
        )


def hub_file(
    repo_id: str, filename: str, name: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None
) -> Path:
    """Download (or find in the cache) one file of a Hub repo, with errors that say what to do."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    check_repo_reference(repo_id, revision, name)
    offline = is_offline()
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=hub_cache_dir(cache_dir),
            local_files_only=offline,
            endpoint=_endpoint(),
            library_name="inceptionzoo",
        )
    except LocalEntryNotFoundError as error:
        if offline:
            raise WeightsNotCachedError(
                f"{name}: {filename} from {repo_id} is not in the cache and HF_HUB_OFFLINE is set; "
                f"{_how_to_fetch(name)}"
            ) from error
        raise WeightsDownloadError(
            f"{name}: could not reach {_endpoint() or 'the Hugging Face Hub'} to fetch {repo_id}/{filename}, and it is "
            f"not cached ({error}); check the network or HF_ENDPOINT and try again"
        ) from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise WeightsDownloadError(
            f"{name}: the Hub has no repo {repo_id!r} (revision {revision or 'main'})"
        ) from error
    except EntryNotFoundError as error:
        raise WeightsDownloadError(f"{name}: the Hub repo {repo_id!r} has no file {filename!r}") from error
    except HfHubHTTPError as error:
        raise WeightsDownloadError(
            f"{name}: the Hub answered with an error for {repo_id}/{filename}: {error}; try again later"
        ) from error
    except Exception as error:  # a dropped connection, a truncated body: whatever the HTTP client raised
        raise WeightsDownloadError(
            f"{name}: downloading {repo_id}/{filename} failed ({type(error).__name__}: {error}); nothing was cached, "
            "try again"
        ) from error
    return _verify_hub_file(Path(path), name)


def _url_to_safetensors(url: str, name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch a PyTorch checkpoint published at ``url`` once, check its hash prefix, and keep it as safetensors."""
    from safetensors.torch import save_file

    from ._checkpoint import load_state_dict

    file_name = Path(urlparse(url).path).name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", file_name) or file_name.startswith("."):
        raise WeightsDownloadError(f"{name}: refusing the unusual checkpoint file name {file_name!r} in {url}")
    folder = hub_cache_dir(cache_dir) / "inceptionzoo-url"
    target = folder / (Path(file_name).stem + ".safetensors")
    if target.is_file():
        return target
    if is_offline():
        raise WeightsNotCachedError(
            f"{name}: {file_name} is not in the cache and HF_HUB_OFFLINE is set; {_how_to_fetch(name)}"
        )
    match = _URL_HASH.search(file_name)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        download = Path(scratch) / file_name
        try:
            torch.hub.download_url_to_file(
                url, str(download), hash_prefix=match.group(1) if match else None, progress=False
            )
        except RuntimeError as error:  # torch.hub's hash-prefix check
            raise CorruptWeightsError(
                f"{name}: {url} does not match its published hash ({error}); nothing was cached"
            ) from error
        except OSError as error:
            raise WeightsDownloadError(f"{name}: downloading {url} failed: {error}; try again") from error
        state_dict = load_state_dict(download)  # torch.load(weights_only=True): no pickled code runs
        converted = Path(scratch) / target.name
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(converted))
        os.replace(converted, target)  # atomic: a crash never leaves a half-written file under the final name
    return target


def download_pretrained(cfg: PretrainedCfg, name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local path of the weights ``cfg`` points at, downloading and checking them first if needed."""
    if cfg.file:
        path = Path(cfg.file)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: weights file not found: {path}")
        return path
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        return hub_file(repo_id, cfg.hf_hub_filename or "model.safetensors", name, cache_dir, revision or None)
    if cfg.url:
        return _url_to_safetensors(cfg.url, name, cache_dir)
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


def _model_card(arch: str, cfg: dict[str, Any], model_args: dict[str, Any], repo_id: str | None) -> str:
    paper = cfg.get("paper_ids") or ""
    metrics = [(k, cfg[k]) for k in ("top1", "top5") if cfg.get(k) is not None]
    name = repo_id or "<your-repo>"
    lines = [
        "---",
        "library_name: inceptionzoo",
        "tags:",
        "- image-classification",
        "- inceptionzoo",
        "- timm",
        f"license: {cfg.get('license') or 'other'}",
        "datasets:",
        f"- {'cifar10' if cfg.get('num_classes') == 10 else 'imagenet-1k'}",
        "---",
        "",
        f"# {arch}",
        "",
        cfg.get("description") or f"An `{arch}` model from inceptionzoo.",
        "",
        "## Usage",
        "",
        "```python",
        "import inceptionzoo",
        "",
        f'model = inceptionzoo.create_model("hf-hub:{name}", pretrained=True).eval()',
        "transform = inceptionzoo.create_transform(model)",
        "```",
        "",
        f"Architecture `{arch}`, {cfg.get('num_classes')} classes, input {cfg.get('input_size')}, "
        f"model arguments {json.dumps(model_args, sort_keys=True)}.",
        "",
        "## Metrics",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in metrics] or ["No published metrics for these weights."]
    lines += ["", "## Citation", "", f"{cfg.get('paper_name') or 'See the paper of the architecture'} ({paper})."]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def save_pretrained(model: torch.nn.Module, folder: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write ``model`` in timm's Hub layout: ``config.json``, ``model.safetensors`` and a README model card.

    The folder loads back with ``create_model("local-dir:<folder>", pretrained=True)`` (or ``hf-hub:`` once pushed).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        k: v
        for k, v in model.pretrained_cfg.items()
        if k not in ("url", "file", "hf_hub_id", "hf_hub_filename", "source", "state_dict")
    }
    arch = cfg.get("architecture") or type(model).__name__
    model_args = dict(getattr(model, "model_args", {}))
    config = {
        "architecture": arch,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": getattr(getattr(model, "global_pool", None), "pool_type", "avg"),
        "model_args": model_args,
        "pretrained_cfg": cfg,
    }
    (folder / "config.json").write_text(json.dumps(_jsonable(config), indent=2) + "\n")
    state_dict = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state_dict, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "README.md").write_text(_model_card(arch, cfg, model_args, repo_id))
    return folder


def push_to_hub(
    model: torch.nn.Module,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Add weights with inceptionzoo",
    revision: str | None = None,
) -> str:
    """Write ``model`` with :func:`save_pretrained` and upload it to ``repo_id`` (created if needed).

    Returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint(), token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        save_pretrained(model, scratch, repo_id=repo_id)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=scratch, commit_message=commit_message, revision=revision
        )
    return str(getattr(commit, "commit_url", commit))
