"""FID (and, from the same pass, IS and KID) between two sets, each an image folder, a tar (``.tar``, ``.tar.gz``,
``.tgz``, or a folder inside one: ``data.tar.gz/test``), a ``.pt`` tensor of images, an image tensor, or statistics
(an ``.npz`` in pytorch-fid's layout, or ``Statistics``). ``inceptionzoo fid A B`` is its command line."""

from __future__ import annotations

import io
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from torch import nn

from ..images import is_image_file, open_image, read_tar
from ..precision import is_int8
from .network import FIDNetwork, RandomWeightsWarning, fid_network
from .resize import DEFAULT_RESIZE_MODE, check_resize_mode, resize_for_fid
from .scores import inception_score, kernel_inception_distance
from .statistics import FeatureStatistics, Statistics, frechet_distance, load_statistics, save_statistics

__all__ = ["FIDResult", "FewImagesWarning", "compute", "set_statistics"]

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
FEATURE_DIMENSION = 2048


class FewImagesWarning(UserWarning):
    """A set with fewer images than FID's 2048 feature dimensions: its covariance is singular and FID biased
    upwards, so the figure compares only with figures from the same number of images."""


@dataclass
class FIDResult:
    """What ``compute`` measured and with what: the figures, each set's image count, the resize mode, the weights
    (tag and sha256 prefix), the precision, the batch size, the images that went through the network and the time
    their features took. ``precision_drift`` is, for a bf16 or int8 run, the relative change of FID between the two
    halves of the first set's first 32 images against fp32 (None in fp32)."""

    fid: float
    counts: dict[str, int | None]
    resize_mode: str
    weights: str | None
    precision: str | None
    batch_size: int
    seconds: float
    images_processed: int = 0
    inception_score: dict[str, tuple[float, float]] = field(default_factory=dict)
    kid: tuple[float, float] | None = None
    precision_drift: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float | None:
        """Images through the network a second (statistics files read as they are do not count)."""
        return self.images_processed / self.seconds if self.seconds > 0 and self.images_processed else None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {**asdict(self), "images_per_second": self.images_per_second}


def _tar_and_prefix(path: Path) -> tuple[Path, PurePosixPath] | None:
    """``(archive, folder inside it)`` for ``archive.tar.gz`` or ``archive.tar.gz/some/folder``; None otherwise."""
    for candidate in (path, *path.parents):
        if candidate.name.endswith(TAR_SUFFIXES) and candidate.is_file():
            return candidate, PurePosixPath(path.relative_to(candidate).as_posix())
    return None


def _folder_images(root: Path) -> Iterator[tuple[str, np.ndarray]]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p.relative_to(root)))
    if not files:
        raise ValueError(f"{root} holds no image files (looked in it and its subfolders)")
    for file in files:
        yield str(file), np.array(open_image(file, str(file)))


def _tar_images(archive: Path, prefix: PurePosixPath) -> Iterator[tuple[str, np.ndarray]]:
    inside = prefix.parts if str(prefix) != "." else ()

    def wanted(member: Any) -> bool:
        path = PurePosixPath(member.name)
        parts = tuple(part for part in path.parts if part != ".")
        return parts[: len(inside)] == inside and is_image_file(PurePosixPath(*parts[len(inside) :]))

    found = False
    for member, data in read_tar(archive, wanted):
        found = True
        where = f"{archive}:{member.name}"
        yield where, np.array(open_image(io.BytesIO(data), where))
    if not found:
        below = f" under {prefix}/" if inside else ""
        raise ValueError(f"{archive} holds no image files{below}")


def _tensor_images(images: Any, name: str) -> Iterator[tuple[str, np.ndarray]]:
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name}: expected images as (n, 3, height, width), got shape {list(images.shape)}")
    for index, image in enumerate(images):
        yield f"{name}[{index}]", image


def _open(source: Any, name: str) -> Statistics | Iterator[tuple[str, Any]]:
    """A set as statistics, or as an iterator of ``(where, image)``: ``(h, w, 3)`` uint8 arrays or ``(3, h, w)``
    tensors."""
    if isinstance(source, Statistics):
        return source
    if isinstance(source, tuple):
        return Statistics(*source)
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return _tensor_images(source, name)
    path = Path(os.fspath(source))
    if path.suffix == ".npz":
        return load_statistics(path)
    if path.suffix in (".pt", ".pth") and path.is_file():
        return _tensor_images(torch.load(path, map_location="cpu", weights_only=True), str(path))
    if path.is_dir():
        return _folder_images(path)
    in_tar = _tar_and_prefix(path)
    if in_tar is not None:
        return _tar_images(*in_tar)
    if not path.exists():
        raise FileNotFoundError(f"no file or folder {path}")
    raise ValueError(
        f"{path} is not a set of images FID reads: give a folder of images, a .tar/.tar.gz of images (or a folder "
        "inside one, archive.tar.gz/folder), a .pt tensor of images, or an .npz of statistics"
    )


class _Progress:
    """A line on stderr, rewritten at most every second: images done, images per second."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name, self.enabled, self.last, self.start = name, enabled, 0.0, time.perf_counter()

    def __call__(self, count: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not final and now - self.last < 1):
            return
        self.last = now
        rate = count / max(now - self.start, 1e-9)
        print(f"\r{self.name}: {count:,} images, {rate:.1f} img/s", end="\n" if final else "", file=sys.stderr,
              flush=True)  # fmt: skip


def _batches(images: Iterator[tuple[str, Any]], size: int, limit: int | None) -> Iterator[list[tuple[str, Any]]]:
    batch: list[tuple[str, Any]] = []
    for count, item in enumerate(images):
        if limit is not None and count >= limit:
            break
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _as_chw(image: Any) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        return torch.from_numpy(image).permute(2, 0, 1)
    return image


def _features_of(
    images: Iterator[tuple[str, Any]],
    network: FIDNetwork,
    resize_mode: str,
    batch_size: int,
    limit: int | None,
    keep_features: bool,
    keep_logits: bool,
    progress: Callable[[int, bool], None],
) -> tuple[Statistics, torch.Tensor | None, torch.Tensor | None]:
    """The statistics of a set's features (and the features and logits themselves when asked), batch by batch;
    each image is resized on its own, so sets of mixed sizes batch as well as any."""
    accumulator = FeatureStatistics(resize_mode, network.weights)
    kept_features: list[torch.Tensor] = []
    kept_logits: list[torch.Tensor] = []
    count = 0
    for batch in _batches(images, batch_size, limit):
        inputs = []
        for where, image in batch:
            try:
                inputs.append(resize_for_fid(_as_chw(image).unsqueeze(0), resize_mode))
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        with torch.inference_mode():
            features = network(torch.cat(inputs))
        if not bool(torch.isfinite(features).all()):
            raise ValueError(
                f"the FID network gave NaN or infinite features for finite images ({batch[0][0]} and after): run "
                "it in float32 with its published weights"
            )
        accumulator.update(features)
        if keep_features:
            kept_features.append(features)
        if keep_logits:
            kept_logits.append(network.logits(features))
        count += len(batch)
        progress(count)
    progress(count, True)
    if count < 2:
        raise ValueError(f"FID needs 2 or more images per set, got {count}")
    features = torch.cat(kept_features) if keep_features else None
    logits = torch.cat(kept_logits) if keep_logits else None
    return accumulator.compute(), features, logits


DRIFT_IMAGES = 32  # the first images of the first image set, on which a reduced precision's FID drift is measured
CALIBRATION_IMAGES = 128  # the images after those that calibrate int8 (all of the first ones in a smaller set)


def _calibration_batches(images: list[tuple[str, Any]], mode: str, batch_size: int) -> list[torch.Tensor]:
    """int8's calibration input: the images after the drift images (all of them in a set too small for both),
    resized, in batches."""
    chosen = images[DRIFT_IMAGES:] if len(images) > DRIFT_IMAGES else images
    resized = [resize_for_fid(_as_chw(image).unsqueeze(0), mode) for _, image in chosen]
    return [torch.cat(resized[i : i + batch_size]) for i in range(0, len(resized), batch_size)]


def _precision_drift(images: list[tuple[str, Any]], network: FIDNetwork, reference: FIDNetwork, mode: str) -> float:
    """FID between the two halves of ``images`` with ``network`` relative to that with the fp32 ``reference``,
    minus one: what running in bf16 or int8 does to a figure, measured on the user's own images."""
    batch = torch.cat([resize_for_fid(_as_chw(image).unsqueeze(0), mode) for _, image in images])
    half = len(images) // 2
    figures = []
    for model in (network, reference):
        with torch.inference_mode():
            features = model(batch).double()
        figures.append(frechet_distance(features[:half], features[half:]))
    return figures[0] / figures[1] - 1 if figures[1] > 0 else 0.0


def set_statistics(
    source: Any,
    resize_mode: str = DEFAULT_RESIZE_MODE,
    batch_size: int = 50,
    max_images: int | None = None,
    network: FIDNetwork | None = None,
    save: str | os.PathLike | None = None,
    progress: bool = False,
) -> Statistics:
    """The FID statistics of one set (what ``--save-stats`` writes, in pytorch-fid's ``.npz`` layout with the resize
    mode, weights and image count beside them)."""
    check_resize_mode(resize_mode)
    opened = _open(source, "images")
    if isinstance(opened, Statistics):
        statistics = opened
    else:
        network = network or fid_network()
        statistics = _features_of(opened, network, resize_mode, batch_size, max_images, False, False,
                                  _Progress(str(source) if not isinstance(source, torch.Tensor) else "images",
                                            progress))[0]  # fmt: skip
    if save is not None:
        save_statistics(save, statistics)
    return statistics


def compute(
    a: Any,
    b: Any,
    resize_mode: str = DEFAULT_RESIZE_MODE,
    batch_size: int = 50,
    max_images: int | None = None,
    isc: bool = False,
    isc_splits: int = 10,
    kid: bool = False,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    model: nn.Module | None = None,
    fast: bool = True,
    dtype: Any = torch.float32,
    allow_random_weights: bool = False,
    progress: bool = False,
    engine: str = "torch",
) -> FIDResult:
    """FID between sets ``a`` and ``b`` (folders, tars, tensors, ``.pt`` or ``.npz`` files, ``Statistics``), their
    Inception Scores (``isc``, of the image sets) and KID (``kid``, both sets as images).

    The images are resized by ``resize_mode`` (``pytorch-fid``, ``tf`` or ``clean``: docs/fid.md); statistics made
    with another mode are refused. The network is ``inception_v3_fid`` with its published weights (``model`` to pass
    one); ``fast`` (the default) runs its fp32 fast path (with ONNX Runtime for ``engine="onnxruntime"``),
    ``dtype=torch.bfloat16`` or ``"int8"`` faster ones that move FID, by the ``precision_drift`` the result reports
    (int8 is calibrated on up to 128 images of the first set that follow the 32 the drift is measured on).
    """
    check_resize_mode(resize_mode)
    sets = {"a": _open(a, "a"), "b": _open(b, "b")}
    for which, opened in sets.items():
        if isinstance(opened, Statistics):
            if opened.resize_mode is not None and opened.resize_mode != resize_mode:
                raise ValueError(
                    f"set {which}'s statistics were made with resize mode {opened.resize_mode!r}, not "
                    f"{resize_mode!r}: FIDs compare only under one resize; pass resize_mode={opened.resize_mode!r} "
                    f"(--resize-mode {opened.resize_mode})"
                )
            if kid:
                raise ValueError(f"KID needs the features of both sets; set {which} is statistics only")
    needs_network = any(not isinstance(opened, Statistics) for opened in sets.values())
    network, drift = None, None
    if needs_network:
        # a reduced precision's drift is measured on the first image set's first images, and int8 is calibrated on
        # the ones after them: both are read once, here, and replayed to the pass over the set
        first = next(which for which, opened in sets.items() if not isinstance(opened, Statistics))
        reduced = dtype != torch.float32 and not isinstance(model, FIDNetwork)  # a built one has lost its fp32 source
        head = []
        if reduced:
            head = list(itertools.islice(sets[first], DRIFT_IMAGES + (CALIBRATION_IMAGES if is_int8(dtype) else 0)))
            sets[first] = itertools.chain(head, sets[first])
        calibration = None
        if reduced and is_int8(dtype):
            calibration = _calibration_batches(head[:max_images] if max_images else head, resize_mode, batch_size)
        network = fid_network(model, fast, dtype, allow_random_weights, engine, calibration_images=calibration)
        if len(head[:DRIFT_IMAGES]) >= 4:
            reference = fid_network(model, fast, torch.float32, allow_random_weights, engine)
            drift = _precision_drift(head[:DRIFT_IMAGES], network, reference, resize_mode)
    weights = network.weights if network is not None else None
    for which, opened in sets.items():
        if isinstance(opened, Statistics) and opened.weights and weights and opened.weights != weights:
            raise ValueError(
                f"set {which}'s statistics come from weights {opened.weights}, these features from {weights}: FID "
                "compares features of one network"
            )
    statistics: dict[str, Statistics] = {}
    features: dict[str, torch.Tensor | None] = {}
    scores: dict[str, tuple[float, float]] = {}
    seconds, processed = 0.0, 0
    for which, opened in sets.items():
        if isinstance(opened, Statistics):
            statistics[which] = opened
            continue
        start = time.perf_counter()
        statistics[which], features[which], logits = _features_of(
            opened, network, resize_mode, batch_size, max_images, kid, isc, _Progress(f"set {which}", progress)
        )
        seconds += time.perf_counter() - start
        processed += statistics[which].count
        if isc:
            scores[which] = inception_score(logits, isc_splits)
    notes = []
    counts = {which: values.count for which, values in statistics.items()}
    small = {which: count for which, count in counts.items() if count is not None and count < FEATURE_DIMENSION}
    if small:
        notes.append(
            f"fewer images than FID's {FEATURE_DIMENSION} feature dimensions ("
            + ", ".join(f"set {which}: {count}" for which, count in small.items())
            + "): the covariance is singular and FID biased upwards; compare only figures from as many images"
        )
        warnings.warn(notes[-1], FewImagesWarning, stacklevel=2)
    if weights is not None and weights.startswith("random"):
        notes.append("computed with random weights, not the FID network's: the figures mean nothing")
        warnings.warn(notes[-1], RandomWeightsWarning, stacklevel=2)
    kid_value = None
    if kid:
        kid_value = kernel_inception_distance(features["a"], features["b"], kid_subsets, kid_subset_size)
    return FIDResult(
        fid=frechet_distance(statistics["a"], statistics["b"]),
        counts=counts,
        resize_mode=resize_mode,
        weights=weights or statistics["a"].weights or statistics["b"].weights,
        precision=network.precision if network is not None else None,
        batch_size=batch_size,
        seconds=seconds,
        images_processed=processed,
        inception_score=scores,
        kid=kid_value,
        precision_drift=drift,
        warnings=notes,
    )
