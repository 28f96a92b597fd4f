"""The training cache: decoded datasets, shard indexes and frozen-backbone features, each keyed by all it was made from.

An entry's file name carries a digest of its inputs (every source file's path, size and modification time, the class
list, the settings that shaped it, this module's ``CACHE_FORMAT``), so a changed input is a miss and never a stale
hit. The folder is kept under a size cap (``INCEPTIONZOO_CACHE_MAX_GB``) by evicting the least recently used entries;
``inceptionzoo cache list`` / ``clear`` show and empty it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_FORMAT",
    "CACHE_KINDS",
    "CacheEntry",
    "cache_entries",
    "cache_key",
    "clear_cache",
    "default_cache_dir",
    "evict",
    "file_stamps",
    "max_cache_bytes",
    "partial_path",
    "read_entry",
    "write_atomically",
    "write_entry",
]

CACHE_FORMAT = 2  # raised whenever what an entry holds, or how it is keyed, changes: older entries become misses
CACHE_KINDS = {"dataset": "decoded images of a folder or archive", "shards": "a shard split's index",
               "features": "a frozen backbone's features"}  # fmt: skip
DEFAULT_MAX_GB = 20.0
_STALE_PARTIAL_S = 24 * 3600  # a temporary file this old belongs to a process that was killed mid-write


def default_cache_dir() -> Path:
    """``INCEPTIONZOO_CACHE``, else ``$XDG_CACHE_HOME/inceptionzoo/datasets`` (``~/.cache/inceptionzoo/datasets``)."""
    if os.environ.get("INCEPTIONZOO_CACHE"):
        return Path(os.environ["INCEPTIONZOO_CACHE"]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "inceptionzoo" / "datasets"


def max_cache_bytes() -> int:
    """The size cap of the cache folder: ``INCEPTIONZOO_CACHE_MAX_GB`` (default 20) gigabytes."""
    text = os.environ.get("INCEPTIONZOO_CACHE_MAX_GB", str(DEFAULT_MAX_GB))
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"INCEPTIONZOO_CACHE_MAX_GB must be a number of gigabytes, got {text!r}") from None
    return int(value * 2**30)


def file_stamps(paths: Iterable[str | os.PathLike]) -> list[tuple[str, int, int]]:
    """``(absolute path, size, modification time in ns)`` of each file: what a cache entry made from them depends on."""
    stamps = []
    for path in paths:
        stat = os.stat(path)
        stamps.append((str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns))
    return stamps


def cache_key(kind: str, *parts: Any) -> str:
    """The file name of an entry of ``kind`` made from ``parts`` (any JSON-able values): ``<kind>-<digest>``."""
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; one of {', '.join(CACHE_KINDS)}")
    text = json.dumps([CACHE_FORMAT, kind, *parts], sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def read_entry(path: Path) -> bool:
    """True when the entry exists; marks it as just used (its modification time), which eviction goes by."""
    if not path.is_file():
        return False
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(path)
    return True


def partial_path(path: Path) -> Path:
    """A temporary name beside ``path`` unique to this process and call (``.<name>.<pid>.<random>.partial``), so
    two writers never share one and a killed writer's leftovers can be told by their pid."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """``write`` fills a temporary file beside ``path`` that is then renamed into place: readers never see half a
    file, and a write that fails leaves nothing behind."""
    partial = partial_path(path)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_entry(path: Path, write: Callable[[Path], None], keep_under: int | None = None) -> Path:
    """Write an entry atomically (``write`` fills a temporary file unique to this process, then it is renamed into
    place) and evict the least recently used others until the folder is under ``keep_under`` bytes (default: the
    cap). Readers never see half a file, and two processes never write to the same temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, write)
    evict(path.parent, max_cache_bytes() if keep_under is None else keep_under, keep=path)
    return path


@dataclass(frozen=True)
class CacheEntry:
    """One cache file: its kind, size in bytes and when it was last used (seconds since the epoch)."""

    path: Path
    kind: str
    size: int
    last_used: float


def cache_entries(folder: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The entries of the cache folder, most recently used first (temporary files of writes in progress left out)."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.iterdir():
        kind = path.name.split("-", 1)[0]
        if path.is_file() and not path.name.startswith(".") and kind in CACHE_KINDS:
            stat = path.stat()
            entries.append(CacheEntry(path, kind, stat.st_size, stat.st_mtime))
    return sorted(entries, key=lambda entry: entry.last_used, reverse=True)


def _remove_stale_partials(folder: Path) -> None:
    now = time.time()
    for path in folder.glob(".*.partial"):
        try:
            if now - path.stat().st_mtime > _STALE_PARTIAL_S:
                path.unlink()
        except OSError:
            pass


def evict(folder: str | os.PathLike, max_bytes: int, keep: Path | None = None) -> list[CacheEntry]:
    """Delete the least recently used entries until the folder holds at most ``max_bytes`` (``keep``, the entry
    just written, stays even when it alone is larger); also temporary files left by killed writers. Returns what
    was deleted."""
    folder = Path(folder)
    _remove_stale_partials(folder)
    entries = cache_entries(folder)
    total = sum(entry.size for entry in entries)
    removed = []
    for entry in reversed(entries):  # least recently used first
        if total <= max_bytes:
            break
        if keep is not None and entry.path == keep:
            continue
        entry.path.unlink(missing_ok=True)
        total -= entry.size
        removed.append(entry)
    return removed


def clear_cache(folder: str | os.PathLike | None = None, kind: str | None = None) -> list[CacheEntry]:
    """Delete every entry (of ``kind``, when given) of the cache folder; returns what was deleted."""
    if kind is not None and kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; one of {', '.join(CACHE_KINDS)}")
    removed = [entry for entry in cache_entries(folder) if kind is None or entry.kind == kind]
    for entry in removed:
        entry.path.unlink(missing_ok=True)
    return removed
