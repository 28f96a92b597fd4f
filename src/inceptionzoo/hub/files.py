"""Hub files in the Hugging Face cache, checked against the sha256 the Hub published for them.

Files come through ``huggingface_hub`` (``hf_hub_download``), also in huggingface_hub's shared Xet blob store layout;
a cached file that does not match its published sha256 is removed from the cache and downloaded once more. Repo ids,
revisions and file names are checked before any request is made or any cache path built. ``HF_ENDPOINT``,
``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are read when a download is asked for, so setting them at run time
works.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .errors import (
    CorruptWeightsError,
    WeightsDownloadError,
    WeightsNotCachedError,
    is_offline,
    offline_hint,
    unresolvable_host,
)

__all__ = ["check_repo_reference", "hub_cache_dir", "hub_file", "is_repo_filename"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
# a branch, tag or commit: path segments of letters, digits, '.', '_' and '-' that start with a letter or digit
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
# a file of a repo: '/'-separated segments of letters, digits and '._+=,-' (no URL scheme, drive or backslash)
_REPO_FILENAME = re.compile(r"[A-Za-z0-9._+=,-]+(/[A-Za-z0-9._+=,-]+)*")


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


def hub_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _published_sha256(pointer: Path) -> tuple[Path, str | None]:
    """The repo's own blob entry behind a snapshot pointer, and the sha256 the Hub published for the file.

    huggingface_hub names a repo blob ``blobs/<etag>``, and the etag of an LFS file is its sha256. Only the pointer's
    own link is read: after a Xet download the blob entry is itself a symlink into the cache-wide shared store
    (``<cache>/blobs/<xx>/<xet hash>``), whose name is a Xet hash, not the sha256.
    """
    if not pointer.is_symlink():
        return pointer, None  # symlinks unsupported (huggingface_hub copied the file into the snapshot): no name
    blob = Path(os.path.abspath(pointer.parent / os.readlink(pointer)))
    # a git-stored small file (config.json) is named by its git blob sha1: no sha256 is published for it
    return blob, blob.name if _SHA256.fullmatch(blob.name) else None


def _forget_cached_file(pointer: Path, blob: Path, cache: Path) -> None:
    """Remove one file from the repo's cache entries: its snapshot pointer and its own blob entry.

    A blob entry that links into huggingface_hub's shared store is unlinked, never the store file, which other repos
    may reference; huggingface_hub's ``delete_files`` (where the installed version has it) also collects a store file
    that nothing references any more.
    """
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    if hasattr(info, "delete_files"):
        files = [
            file
            for repo in info.repos
            for revision in repo.revisions
            for file in revision.files
            if os.path.samefile(file.file_path.parent, pointer.parent) and file.file_name == pointer.name
        ]
        if files:
            info.delete_files(*files).execute()
    pointer.unlink(missing_ok=True)  # older huggingface_hub, or a cache its scan refused: the same two entries
    if blob != pointer:
        blob.unlink(missing_ok=True)


def _matches_published_hash(pointer: Path, cache: Path) -> bool:
    """Whether a cached Hub file hashes to the sha256 it was published with; a file that does not is forgotten."""
    blob, published = _published_sha256(pointer)
    if published is None:
        return True
    with open(pointer, "rb") as handle:
        if hashlib.file_digest(handle, "sha256").hexdigest() == published:
            return True
    _forget_cached_file(pointer, blob, cache)
    return False


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


def is_repo_filename(filename: object) -> bool:
    """Whether ``filename`` names a file inside a repo: relative, no ``..`` or ``.`` segment, no URL or drive syntax."""
    return (
        isinstance(filename, str)
        and _REPO_FILENAME.fullmatch(filename) is not None
        and not any(part in (".", "..") for part in filename.split("/"))
    )


def _hf_hub_download(
    repo_id: str, filename: str, name: str, cache: Path, revision: str | None, force_download: bool = False
) -> Path:
    """``hf_hub_download`` with errors that say what to do."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = is_offline()
    host = None if offline else unresolvable_host(hub_endpoint() or "https://huggingface.co")
    if host is not None:  # no network: what is cached is used at once, as huggingface_hub would after its retries
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache, local_files_only=True))
        except LocalEntryNotFoundError as error:
            raise WeightsDownloadError(
                f"{name}: cannot resolve {host} (no network or no DNS here), and {repo_id}/{filename} is not cached; "
                f"{offline_hint(name)}"
            ) from error
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache,
                local_files_only=offline,
                force_download=force_download,
                endpoint=hub_endpoint(),
                library_name="inceptionzoo",
            )
        )
    except LocalEntryNotFoundError as error:
        if offline:
            raise WeightsNotCachedError(
                f"{name}: {filename} from {repo_id} is not in the cache", name, cache
            ) from error
        raise WeightsDownloadError(
            f"{name}: could not reach {hub_endpoint() or 'the Hugging Face Hub'} to fetch {repo_id}/{filename}, and it "
            f"is not cached ({error}); check the network or HF_ENDPOINT, or {offline_hint(name)}"
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


def hub_file(
    repo_id: str, filename: str, name: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None
) -> Path:
    """Download (or find in the cache) one file of a Hub repo, checked against the sha256 the Hub published for it.

    A cached file that does not match is forgotten and, online, downloaded once more with ``force_download``, which
    also replaces a bad file in huggingface_hub's shared store for every repo that links to it.
    """
    check_repo_reference(repo_id, revision, name)
    if not is_repo_filename(filename):
        raise ValueError(
            f"{name}: {filename!r} is not a file of the Hub repo {repo_id!r} (a relative path of letters, digits, "
            "'.', '_', '-', '+', '=', ',' and '/', without '..', a URL or an absolute path)"
        )
    cache = hub_cache_dir(cache_dir)
    path = _hf_hub_download(repo_id, filename, name, cache, revision)
    if _matches_published_hash(path, cache):
        return path
    if not is_offline():
        path = _hf_hub_download(repo_id, filename, name, cache, revision, force_download=True)
        if _matches_published_hash(path, cache):
            return path
    raise CorruptWeightsError(
        f"the cached weights of {name} ({repo_id}/{filename}) do not match the sha256 the Hub published for them; "
        "they were removed from the cache"
        + ("" if is_offline() else ", and a fresh download did not match either: try again later")
        + f" (or run `inceptionzoo download {name}` with network access)"
    )
