"""Image files and tar archives as people have them: decoding any mode PIL reads to 8-bit RGB, telling image files
from the rest, and reading a tar (or .tar.gz) in one checked, sequential pass. Shared by the training data and FID,
so both read the same files the same way."""

import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["DECODE_ERRORS", "IMAGE_EXTENSIONS", "BadImageError", "is_hidden", "is_image_file", "open_image", "read_tar"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
# what PIL's decoders raise on a corrupt, truncated or oversized (decompression bomb) file
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


class BadImageError(ValueError):
    """An image file that cannot be decoded: corrupt, truncated or not an image."""


def is_image_file(relative: PurePath) -> bool:
    """True for an image file (``IMAGE_EXTENSIONS``) under a class folder, given its path below the split; hidden
    files and folders (``.name``, macOS ``._name``) and ``__MACOSX`` are left out, in folders and archives alike."""
    return relative.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(relative.parts)


def is_hidden(parts: Sequence[str]) -> bool:
    """True for a path (its parts) that a file browser hides: a part named ``.name`` or ``__MACOSX``."""
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _eight_bit(image: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits as ``L``, scaled, where ``convert`` would clip 30000 to 255: 16-bit values / 257,
    floats in [0, 1] * 255, other 32-bit integers or floats stretched from their range."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if image.mode.startswith("I;16") or (image.mode == "I" and values.min() >= 0 and values.max() <= 65535):
        scaled = values / 257
    elif image.mode == "F" and values.min() >= 0 and values.max() <= 1:
        scaled = values * 255
    else:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255 / (high - low) if high > low else 0.0)
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8))


def open_image(data: Any, name: str, hint: str = "") -> Image.Image:
    """Decode a file (a path or a binary file object) fully into an RGB image; errors name ``name`` and end with
    ``hint`` (what the caller offers to do about it)."""
    try:
        with Image.open(data) as image:
            image.load()  # decode now: a truncated file fails here, inside the try, not later in a transform
            if image.mode.startswith("I") or image.mode == "F":
                return _eight_bit(image).convert("RGB")
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")  # what PIL asks for palette images with transparency
            return image.convert("RGB")
    except DECODE_ERRORS as error:
        raise BadImageError(f"{name} cannot be read as an image ({error})" + (f"; {hint}" if hint else "")) from None


TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)  # a cut, damaged or non-tar file (gzip's included)


def _check_end(archive: tarfile.TarFile) -> None:
    """Raise ``tarfile.ReadError`` unless two zero blocks follow the last member (read in stream mode, ``r|*``)."""
    block = tarfile.BLOCKSIZE
    read = archive.fileobj.tell() - archive.offset  # what tarfile read where the next header would be, and gave up on
    rest = archive.fileobj.read(block) if read == block else b""
    if read != block or len(rest) != block or rest.count(0) != block:
        raise tarfile.ReadError(
            f"it ends at byte {archive.offset + read + len(rest)} without the two zero blocks that end a tar after "
            "its last member"
        )


def read_tar(
    path: Path, wanted: Callable[[tarfile.TarInfo], bool] = lambda member: True, error: type[Exception] = ValueError
) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """``(member, bytes)`` of the files ``wanted`` picks, in one sequential pass; a file that is not a tar, is cut
    short or lacks its end-of-archive marker is an ``error`` naming it."""
    try:
        with tarfile.open(path, mode="r|*") as archive:  # streamed: a header declaring huge sizes is not read at once
            for member in archive:
                if member.isfile() and wanted(member):
                    yield member, archive.extractfile(member).read()
            _check_end(archive)
    except TAR_ERRORS as cause:
        raise error(f"{path} cannot be read to the end: it is cut short or not a tar file ({cause})") from None
