"""Reading a hostile ``.pth`` costs little: a zip bomb of a pickle, or a pickle that is one opcode repeated millions
of times, is refused naming the file before ``torch.load`` unpacks it, and the static scan for what a pickle would
import is bounded in memory and runs once."""

import os
import pickle
import pickletools
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch

from inceptionzoo import CheckpointError, UnsafeCheckpointError, checkpoint, load_state_dict

MiB = 1 << 20


class TorchLoadCalled(BaseException):
    """Raised by the stand-in ``torch.load``: a BaseException, so no ``except Exception`` hides the call."""


@pytest.fixture
def no_torch_load(monkeypatch):
    """``torch.load`` fails the test at once: these files must be refused before it runs."""

    def refuse(path, *args, **kwargs):
        raise TorchLoadCalled(f"torch.load was called on {path}")

    monkeypatch.setattr(torch, "load", refuse)


def zipped_pickle(path: Path, chunk: bytes, repeats: int, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A ``torch.save``-shaped zip whose ``data.pkl`` is PROTO 2 and then ``chunk`` repeated, written in pieces."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/version", b"3\n")
        with archive.open("archive/data.pkl", "w", force_zip64=True) as record:
            record.write(b"\x80\x02")
            piece = chunk * max(1, MiB // len(chunk))
            written = 0
            while written + len(piece) // len(chunk) <= repeats:
                record.write(piece)
                written += len(piece) // len(chunk)
            record.write(chunk * (repeats - written))
    return path


def test_an_over_size_pickle_record_is_refused_before_torch_load(tmp_path, no_torch_load):
    path = zipped_pickle(tmp_path / "bomb.pth", b"(", 80 * MiB)  # MARK; deflated to well under a megabyte
    with pytest.raises(CheckpointError, match=r"bomb\.pth.*data\.pkl.*80\.0 MiB") as caught:
        load_state_dict(path)
    assert str(path) in str(caught.value)


def test_a_highly_compressed_pickle_record_is_refused_before_torch_load(tmp_path, no_torch_load):
    path = zipped_pickle(tmp_path / "bomb.pth", b"(", 16 * MiB)  # under the size bound, but about 1000:1
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(CheckpointError, match=r"bomb\.pth.*data\.pkl.*16\.0 MiB.*compressed") as caught:
        load_state_dict(path)
    assert str(path) in str(caught.value)


def test_a_pickle_of_millions_of_opcodes_is_refused_before_torch_load(tmp_path, no_torch_load):
    path = tmp_path / "marks.pth"
    path.write_bytes(b"\x80\x02" + b"(" * 1_200_000)  # 1.2 MB of MARK, each a list in torch's unpickler
    with pytest.raises(CheckpointError, match=r"marks\.pth was refused: its pickle runs past") as caught:
        load_state_dict(path)
    assert str(path) in str(caught.value)


PATTERNS = {
    "MARK": (b"(", 400_000),
    "EMPTY_LIST POP": (b"]0", 200_000),
    "string MEMOIZE": (b"\x8c\x01a\x94", 200_000),
}


@pytest.mark.parametrize("container", ["raw pickle", "stored zip"])
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_the_scan_of_a_long_pickle_is_bounded_and_runs_once(tmp_path, monkeypatch, container, pattern):
    """Memory does not grow with the pickle: with a lower opcode bound (for speed), the scan of 400,000 opcodes holds
    far less than a list of them would."""
    chunk, repeats = PATTERNS[pattern]
    path = tmp_path / "long.pth"
    if container == "raw pickle":
        path.write_bytes(b"\x80\x02" + chunk * repeats)
    else:
        zipped_pickle(path, chunk, repeats, zipfile.ZIP_STORED)
    loads, scans = [], []

    def refusing_load(file, *args, **kwargs):  # as torch refuses it, without its cost
        loads.append(file)
        raise pickle.UnpicklingError("refused")

    genops = pickletools.genops

    def counted_genops(stream, *args, **kwargs):
        scans.append("inceptionzoo")
        return genops(stream, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "_MAX_PICKLE_OPCODES", 100_000, raising=False)
    monkeypatch.setattr(torch, "load", refusing_load)
    monkeypatch.setattr(pickletools, "genops", counted_genops)
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        ask_torch = torch.serialization.get_unsafe_globals_in_checkpoint
        monkeypatch.setattr(
            torch.serialization,
            "get_unsafe_globals_in_checkpoint",
            lambda *args, **kwargs: scans.append("torch") or ask_torch(*args, **kwargs),
        )
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as caught:
            load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(caught.value)
    assert peak < 2 * MiB, f"the scan of {os.path.getsize(path)} bytes of pickle held {peak / MiB:.1f} MiB"
    assert len(scans) == 1, f"the pickle was scanned {len(scans)} times: {scans}"


def test_a_short_hostile_pickle_is_still_named(tmp_path):
    path = tmp_path / "evil.pth"
    zipped_pickle(path, b"\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x04true\x94\x85R.", 1, zipfile.ZIP_STORED)
    with pytest.raises(
        UnsafeCheckpointError, match=r"evil\.pth was refused: loading it would import (os|posix)\.system"
    ):
        load_state_dict(path)


@pytest.mark.parametrize("zipped", [True, False])
def test_state_dicts_in_both_torch_formats_still_load(tmp_path, zipped):
    """The bounds and the scan leave real files alone: the zip format and the legacy one (pickles, then raw bytes)."""
    state_dict = {
        "weight": torch.randn(64, 32),
        "mask": torch.ones(4096, dtype=torch.uint8) * 40,
        "step": torch.tensor(3),
    }
    path = tmp_path / "weights.pth"
    torch.save(state_dict, path, _use_new_zipfile_serialization=zipped)
    loaded = load_state_dict(path)
    assert loaded.keys() == state_dict.keys() and all(torch.equal(loaded[k], v) for k, v in state_dict.items())
