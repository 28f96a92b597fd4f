"""Reading checkpoint files safely and loading them into models with errors that name what does not fit."""

from __future__ import annotations

import _compat_pickle
import os
import pickle
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "load_checkpoint",
    "load_pretrained_weights",
    "load_quantized_state_dict",
    "load_state_dict",
    "read_pickled",
]

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and says why."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys, shapes or dtypes do not fit the model; the message lists every difference by name."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read (empty, truncated, not a checkpoint, a pickle far beyond what a state
    dict needs) or holds NaN / infinite weights."""


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint that would import or call Python code when loaded; it is refused without running it."""


# what torch's own checkpoints import, besides torch itself; torch allows these under weights_only
_EXPECTED_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset")


_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")

_MiB = 1 << 20
# a state dict's pickle holds names, shapes and storage keys, not tensor data (separate zip records): a few MiB even
# for large models, so this leaves room for any real one and keeps a zip bomb away from torch.load
_MAX_PICKLE_BYTES = 64 * _MiB
# deflate packs a state dict's pickle a few times; far more means a long run of one repeated opcode
_MAX_PICKLE_RATIO = 100
# a state dict takes a few dozen opcodes per tensor; millions of MARKs or lists cost torch's unpickler gigabytes
_MAX_PICKLE_OPCODES = 1_000_000
# torch's legacy (non-zip) format is five pickles in a row, then raw tensor bytes; torch unpickles no more than these
_MAX_PICKLES = 5
# what the scan keeps: memoized names (for STACK_GLOBAL), their length, and the names a refusal lists
_MAX_MEMO_NAMES = 10_000
_MAX_NAME_LENGTH = 1_000
_MAX_LISTED = 20


def _python3_name(dotted: str) -> str:
    """The name Python 3's unpickler imports for a protocol 0-2 pickle's Python 2 name (``__builtin__.eval``)."""
    module, name = dotted.rsplit(".", 1)
    module, name = _compat_pickle.NAME_MAPPING.get(
        (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
    )
    return f"{module}.{name}"


def _size_text(size: int) -> str:
    return f"{size / _MiB:.1f} MiB" if size >= _MiB else f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} bytes"


class _BoundedReader:
    """A stream whose reads stop at ``limit`` bytes in all, so a length declared in a pickle cannot make the scan
    read a whole file into memory; a read past it ends the scan as the end of the pickle data would."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            raise EOFError("the scan's byte bound")
        data = self.raw.read(size)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self.raw.readline(min(self.left, _MiB))
        self.left -= len(data)
        return data

    def tell(self) -> int:
        return self.raw.tell()


class _GlobalsScan:
    """Every ``module.name`` a pickle stream would import beyond what torch's own checkpoints import, read statically
    (nothing is unpickled), in bounded memory: at most ``_MAX_PICKLE_OPCODES`` opcodes, and of the pickle's values
    only the two last pushed and the memoized names that ``STACK_GLOBAL`` may fetch.

    Written by hand because torch's own scan (``get_unsafe_globals_in_checkpoint``) reads only zip checkpoints, exists
    only in newer torch and keeps the whole pickle in memory. ``STACK_GLOBAL`` takes its two names from the strings
    pushed or fetched from the memo before it.
    """

    def __init__(self) -> None:
        self.found: set[str] = set()
        self.opcodes = 0
        self.stopped = False  # the opcode bound was reached before the pickle ended

    def read(self, stream: IO[bytes], size: int) -> None:
        """Scan the pickles at the start of ``stream`` (``size`` bytes), until the first that is not one."""
        reader = _BoundedReader(stream, min(size, _MAX_PICKLE_BYTES))
        for _ in range(_MAX_PICKLES):
            if self.stopped or reader.left <= 0 or stream.tell() >= size:
                return
            imports = self._one_pickle(reader)
            if imports is None:
                return  # not (or no longer) a pickle: the raw tensor bytes of the legacy format, or garbage
            self.found |= imports

    def _one_pickle(self, reader: _BoundedReader) -> set[str] | None:
        """The names one pickle imports; None when it does not read to its end (the bound stops it with its names)."""
        imports: set[str] = set()
        memo: dict[int, str] = {}
        memo_length = 0
        last: tuple[str | None, str | None] = (None, None)
        try:
            for opcode, arg, _ in pickletools.genops(reader):
                self.opcodes += 1
                if self.opcodes > _MAX_PICKLE_OPCODES:
                    self.stopped = True
                    self.found |= imports
                    return None
                name = opcode.name
                pushed: str | None = None
                if name in ("GLOBAL", "INST"):
                    self._add(imports, ".".join(str(arg).split(" ", 1)))
                elif name == "STACK_GLOBAL" and None not in last:
                    self._add(imports, f"{last[0]}.{last[1]}")
                elif "UNICODE" in name or "STRING" in name:
                    text = str(arg)
                    pushed = (
                        text
                        if len(text) <= _MAX_NAME_LENGTH and all(p.isidentifier() for p in text.split("."))
                        else None
                    )
                elif name == "MEMOIZE" or name.endswith("PUT"):
                    index = memo_length if name == "MEMOIZE" else int(arg)
                    memo_length = max(memo_length, index + 1)
                    memo.pop(index, None)
                    if last[1] is not None and len(memo) < _MAX_MEMO_NAMES:
                        memo[index] = last[1]
                    continue
                elif name.endswith("GET"):
                    pushed = memo.get(int(arg))
                last = (last[1], pushed)
        except (
            ValueError,
            EOFError,
            OverflowError,
            pickle.UnpicklingError,
            struct.error,
            zipfile.BadZipFile,
            zlib.error,
        ):
            return None  # what genops raises on what is not a pickle, and a damaged zip record's errors (CRC, zlib)
        return imports

    @staticmethod
    def _add(imports: set[str], dotted: str) -> None:
        if len(imports) < _MAX_LISTED and _DOTTED_NAME.fullmatch(dotted):
            name = _python3_name(dotted)
            if not name.startswith(_EXPECTED_GLOBALS):
                imports.add(name)


def _pickle_records(path: Path, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The pickle records of a zip checkpoint, refused when their declared sizes could not be a state dict's."""
    records = [info for info in archive.infolist() if info.filename.endswith(".pkl")]
    for info in records:
        size, packed = info.file_size, info.compress_size
        if size > _MAX_PICKLE_BYTES:
            raise CorruptCheckpointError(
                f"{path} was refused: its pickle record {info.filename} unpacks to {_size_text(size)} (from "
                f"{_size_text(packed)}), more than the {_size_text(_MAX_PICKLE_BYTES)} any state dict's pickle needs "
                "(tensor data are separate records); unpickling it could exhaust memory"
            )
        if info.compress_type != zipfile.ZIP_STORED and size > _MAX_PICKLE_RATIO * max(packed, 1):
            raise CorruptCheckpointError(
                f"{path} was refused: its pickle record {info.filename} unpacks to {_size_text(size)} from "
                f"{_size_text(packed)} compressed, over {_MAX_PICKLE_RATIO} times, as no state dict's pickle does: "
                "a zip bomb, whose unpickling could exhaust memory"
            )
    return records


def _scan_pickles(path: Path) -> _GlobalsScan:
    """Check a checkpoint's pickles before torch reads them: the zip records' declared sizes, then one bounded scan
    for what they would import."""
    scan = _GlobalsScan()
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                for info in _pickle_records(path, archive):
                    with archive.open(info) as record:
                        scan.read(record, info.file_size)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError) as error:
            raise CorruptCheckpointError(
                f"{path} cannot be read as a PyTorch checkpoint: its zip directory is damaged ({error})"
            ) from None
    else:
        with open(path, "rb") as handle:
            scan.read(handle, path.stat().st_size)
    return scan


def _unsafe(path: Path, refused: set[str]) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path} was refused: loading it would import {', '.join(sorted(refused))}, and a pickle can run any code it "
        "imports. inceptionzoo loads only tensors (torch.load with weights_only=True). If you trust where the "
        "file came from, convert it to safetensors yourself"
    )


def read_pickled(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)``: only tensors and plain containers are built, no pickled code runs.

    Before it, the zip's pickle records are checked against size bounds and scanned once, in bounded time and memory,
    for what they would import: a refused file is ``UnsafeCheckpointError`` naming it, read from the pickle itself
    rather than from torch's message, whose wording changes between versions.
    """
    path = Path(path)
    scan = _scan_pickles(path)
    if scan.stopped:
        if scan.found:
            raise _unsafe(path, scan.found)
        raise CorruptCheckpointError(
            f"{path} was refused: its pickle runs past {_MAX_PICKLE_OPCODES:,} operations, where a state dict takes a "
            "few dozen per tensor; unpickling it could exhaust memory"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's unpickler raises anything on garbage, IndexError included
        if scan.found:
            raise _unsafe(path, scan.found) from None
        raise CorruptCheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint: it is truncated or not a checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no details'})"
        ) from None


def _read_safetensors(path: Path) -> Mapping:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CorruptCheckpointError(
            f"{path} cannot be read as safetensors: it is truncated or not a safetensors file ({error})"
        ) from None


def _check_finite(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CorruptCheckpointError(
            f"{path} holds NaN or infinite values in {len(bad)} tensor(s): {_describe(bad)}; a model built from it "
            "would output NaN. The file is damaged or comes from a diverged training run"
        )


def _existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path``, or the error that says it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"{path} is empty (0 bytes): an interrupted download or copy")
    return path


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file, or a PyTorch file with ``torch.load(weights_only=True)`` (no pickled code).

    Training checkpoints that nest the weights under ``state_dict``/``model`` and DataParallel's ``module.``
    prefixes are unwrapped, so files written by timm, torchvision and common training scripts load as they are.
    Unreadable files and NaN / infinite weights raise ``CorruptCheckpointError``, pickles that would run code
    ``UnsafeCheckpointError``, each naming the file.
    """
    path = _existing_file(path)
    if path.suffix == ".safetensors":
        state_dict: Mapping = _read_safetensors(path)
    else:
        state_dict = read_pickled(path)
        if isinstance(state_dict, Mapping):
            for key in _NESTED_KEYS:
                if isinstance(state_dict.get(key), Mapping):
                    state_dict = state_dict[key]
                    break
    if not isinstance(state_dict, Mapping) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise CheckpointMismatchError(f"{path} does not hold a state dict of tensors")
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    _check_finite(path, state_dict)
    return dict(state_dict)


def load_quantized_state_dict(path: str | os.PathLike) -> Mapping[str, Any]:
    """An int8 checkpoint as torch's eager quantization saves it (torchvision's ``*_fbgemm`` files): quantized
    tensors, packed-parameter tuples and dtypes, read with ``weights_only=True``; the module versions
    (``_metadata``) are kept, since quantized modules read their layout from them."""
    path = _existing_file(path)
    try:
        state_dict = read_pickled(path)
    except CorruptCheckpointError as error:
        if "_rebuild_qtensor" not in str(error):
            raise
        raise CheckpointError(
            f"{path}: torch {torch.__version__} cannot read quantized tensors with torch.load(weights_only=True), "
            "the only way inceptionzoo reads pickles; newer torch releases can (2.14 does): upgrade torch to load "
            "int8 weights"
        ) from None
    if not isinstance(state_dict, Mapping) or not any(getattr(v, "is_quantized", False) for v in state_dict.values()):
        raise CheckpointMismatchError(f"{path} does not hold an int8 (quantized) state dict")
    return state_dict


def _describe(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "integer"


def _counted(key: str) -> bool:
    """Keys a mismatch report counts: BatchNorm's ``num_batches_tracked`` counter is noise (torch fills it in)."""
    return not key.endswith("num_batches_tracked")


def check_state_dict_fits(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "checkpoint",
    *,
    own: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Raise ``CheckpointMismatchError`` saying how many of the model's keys the checkpoint matches, then
    listing (sorted) missing keys, unexpected keys, shape mismatches and dtypes of another kind (integer or boolean
    where the model has floats, or the reverse; float precisions may differ). ``own`` is the model's state dict
    where the caller has it already."""
    own = {k: v for k, v in (model.state_dict() if own is None else own).items() if _counted(k)}
    missing = sorted(k for k in own if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in own and _counted(k))
    shapes = [
        f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})"
        for k in sorted(own)
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    dtypes = [
        f"{k} (checkpoint {state_dict[k].dtype}, model {own[k].dtype})"
        for k in sorted(own)
        if k in state_dict and _dtype_kind(state_dict[k].dtype) != _dtype_kind(own[k].dtype)
    ]
    if not (missing or unexpected or shapes or dtypes):
        return
    fitting = sum(1 for k in own if k in state_dict and state_dict[k].shape == own[k].shape)
    lines = [f"{source} does not fit {type(model).__name__}: {fitting} of its {len(own)} keys match by name and shape"]
    if fitting < len(own) / 2:
        lines[0] += " (most keys differ: the checkpoint is of another architecture, or of another variant)"
    if missing:
        lines.append(f"  missing from the checkpoint ({len(missing)}): {_describe(missing)}")
    if unexpected:
        lines.append(f"  not in the model ({len(unexpected)}): {_describe(unexpected)}")
    if shapes:
        lines.append(f"  different shapes ({len(shapes)}): {_describe(shapes, 6)}")
    if dtypes:
        lines.append(f"  different kinds of dtype ({len(dtypes)}): {_describe(dtypes, 6)}")
    aux_heads = tuple(f"{name}." for name in _aux_head_names(model))
    if aux_heads and any(k.startswith(aux_heads) for k in missing):
        lines.append("  (the model has an auxiliary head the checkpoint lacks: build it with aux_logits=False)")
    classifiers = tuple(f"{name}." for name in _classifier_names(model))
    if fitting >= len(own) / 2 and classifiers and any(k.startswith(classifiers) for k in shapes):
        lines.append("  (the classifier differs: build the model with the checkpoint's num_classes, or pass the file "
                     "as pretrained_file= to start from its weights with a new classifier)")  # fmt: skip
    raise CheckpointMismatchError("\n".join(lines))


def _classifier_names(model: nn.Module) -> list[str]:
    """The module names of ``model``'s classifiers, from the model: the zoo's ``classifier_names()`` (head and
    auxiliary heads), else timm's ``pretrained_cfg["classifier"]``; none for a model that names neither."""
    if hasattr(model, "classifier_names"):
        return list(model.classifier_names())
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    return [classifier] if isinstance(classifier, str) else list(classifier or [])


def _aux_head_names(model: nn.Module) -> list[str]:
    """The module names of the auxiliary heads ``model``'s family has, built or not (the zoo's
    ``aux_head_names()``); none for a model that does not say."""
    return list(model.aux_head_names()) if hasattr(model, "aux_head_names") else []


def drop_unused_aux_keys(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, own: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Drop auxiliary-head weights a checkpoint carries when the model was built without that head.

    timm's and torchvision's Inception-v3 checkpoints include ``AuxLogits.*``; a model built for inference
    (``aux_logits=False``, the default) has no use for them, exactly as in timm. The heads are the ones the model
    names (``aux_head_names()``).
    """
    own = model.state_dict() if own is None else own
    unused = tuple(f"{name}." for name in _aux_head_names(model) if not any(k.startswith(name + ".") for k in own))
    return {k: v for k, v in state_dict.items() if not (unused and k.startswith(unused))}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load weights from a local ``.safetensors`` or ``.pth`` file into ``model``, strictly by default.

    Every key must fit except an auxiliary head the model does not have. Differences are reported by name.
    """
    own = model.state_dict()
    state_dict = drop_unused_aux_keys(model, load_state_dict(path), own=own)
    state_dict = {k: v for k, v in state_dict.items() if _counted(k) or k in own}  # counters of absent norms
    if strict:
        check_state_dict_fits(model, state_dict, source=str(path), own=own)
    else:
        state_dict = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(state_dict, strict=strict)
    return model


def load_pretrained_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Load published weights into ``model``, adapting what the caller changed and nothing else.

    A classifier of another size (or none, ``num_classes=0``) re-initialises the classifiers (head and auxiliary
    heads); a different ``in_chans`` adapts the first convolution with timm's ``adapt_input_conv``. Every other key
    must fit exactly.
    """
    from timm.models import adapt_input_conv

    own = model.state_dict()
    state_dict = drop_unused_aux_keys(model, state_dict, own=own)
    first_conv = model.pretrained_cfg.get("first_conv")
    key = f"{first_conv}.weight" if first_conv else None
    if key and key in state_dict and state_dict[key].shape[1] != model.in_chans:
        state_dict[key] = adapt_input_conv(model.in_chans, state_dict[key])
    reset: list[str] = []
    prefixes = tuple(f"{name}." for name in _classifier_names(model))
    # by the shapes, not by the registered num_classes: a file of one's own (pretrained_file=) has its own head
    head_differs = any(
        k.startswith(prefixes) and (k not in own or v.shape != own[k].shape) for k, v in state_dict.items()
    )
    if head_differs:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}
        reset = [k for k in own if k.startswith(prefixes)]
    check_state_dict_fits(model, {**{k: own[k] for k in reset}, **state_dict}, source=source, own=own)
    incompatible = model.load_state_dict(state_dict, strict=False)
    assert sorted(incompatible.missing_keys) == sorted(reset) and not incompatible.unexpected_keys
    return model
