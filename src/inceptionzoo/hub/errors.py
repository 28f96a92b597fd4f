"""What goes wrong when weights are fetched, and what to tell people: the ``Weights*Error`` classes, and the checks
and hints their messages are made of (offline, a host DNS cannot resolve, how to fetch the weights elsewhere)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "CorruptWeightsError",
    "WeightsDownloadError",
    "WeightsNotCachedError",
    "how_to_fetch",
    "is_offline",
    "offline_hint",
    "unresolvable_host",
]


class WeightsDownloadError(RuntimeError):
    """The weights could not be fetched (server error, dropped connection, missing repo or file)."""


class WeightsNotCachedError(WeightsDownloadError):
    """Offline (``HF_HUB_OFFLINE=1``) and the weights are not in the cache. ``missing`` says what is missing
    (``"NAME: FILE is not in the cache"``), ``name`` and ``folder`` which weights and which cache folder; the message
    adds how to fetch them (``how_to_fetch``; ``downloading``: said to ``inceptionzoo download`` itself)."""

    def __init__(self, missing: str, name: str, folder: Path, downloading: bool = False) -> None:
        reason = "HF_HUB_OFFLINE is set"
        if downloading:
            reason += ", so `inceptionzoo download` cannot fetch it"
        super().__init__(f"{missing} and {reason}; {how_to_fetch(name, folder, downloading)}")
        self.missing, self.name, self.folder, self.downloading = missing, name, Path(folder), downloading

    def __reduce__(self) -> tuple:  # pickled with its own arguments (to and from worker processes)
        return type(self), (self.missing, self.name, self.folder, self.downloading)


class CorruptWeightsError(WeightsDownloadError):
    """A downloaded file does not match its published hash; it has been removed from the cache."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or _env_flag("HF_HUB_OFFLINE")


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def unresolvable_host(url: str) -> str | None:
    """``url``'s host name when DNS cannot resolve it (and no proxy would resolve it for us), else None.

    huggingface_hub retries a failed connection with back-off for about 23 s before it gives up or falls back to
    its cache; a DNS failure will not heal in that time, and one lookup (milliseconds) says so at once.
    """
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return None
    parsed = urlparse(url)
    if not parsed.hostname:
        return None
    try:
        socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except socket.gaierror:
        return parsed.hostname
    except OSError:
        return None
    return None


def offline_hint(name: str) -> str:
    return (
        f"set HF_HUB_OFFLINE=1 to use cached weights without trying the network, run `inceptionzoo download {name}` "
        "where there is network, or start from a local file of the weights: create_model(..., pretrained_file=PATH) "
        "in Python, `inceptionzoo train --pretrained-file PATH` for training"
    )


def how_to_fetch(name: str, folder: Path, downloading: bool = False) -> str:
    """What to do when HF_HUB_OFFLINE is set and ``name``'s weights are not in ``folder``. ``downloading``: said to
    ``inceptionzoo download`` itself, which is the command the other message sends people to."""
    if downloading:
        return (
            f"unset HF_HUB_OFFLINE here and run it again (`env -u HF_HUB_OFFLINE inceptionzoo download {name}`), or "
            f"run the same command on a machine with network access and copy its cache folder ({folder}) here"
        )
    return (
        f"run `inceptionzoo download {name}` on a machine with network access and copy its cache folder "
        f"({folder}) here, or unset HF_HUB_OFFLINE; a local file of the weights works too: "
        "create_model(..., pretrained_file=PATH), `inceptionzoo train --pretrained-file PATH`"
    )
