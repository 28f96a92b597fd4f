"""A set's FID statistics (mean and covariance of its features), gathered batch by batch in float64, kept in
pytorch-fid's ``.npz`` layout, and the Fréchet distance between two sets (Heusel et al. 2017, arXiv:1706.08500).

The distance is computed in float64 with torch instead of SciPy's ``sqrtm`` (slow, and its signature changed under
pytorch-fid): ``tr((S_a S_b)^(1/2))`` from the eigenvalues of a symmetric PSD matrix, or, with fewer images than
feature dimensions and the features at hand, as a sum of singular values of the centred features' products, which
stays exact where the covariance is singular.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import numpy as np

    Array = torch.Tensor | np.ndarray

__all__ = [
    "FeatureStatistics",
    "Statistics",
    "feature_statistics",
    "frechet_distance",
    "load_statistics",
    "save_statistics",
]

# how far from symmetric and positive semi-definite a covariance may be, relative to its largest entry or eigenvalue:
# rounding (float32 statistics, fewer samples than dimensions) stays far below it, a matrix that is not a covariance
# far above
COVARIANCE_TOLERANCE = 1e-4


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    """A torch tensor (or numpy array) as a float64 tensor; anything else is named."""
    if not isinstance(value, torch.Tensor):
        if not hasattr(value, "__array__"):
            raise ValueError(f"expected {what} as a torch tensor or numpy array, got {type(value).__name__}")
        kind = getattr(getattr(value, "dtype", None), "kind", "f")
        if kind not in "fiu":
            raise ValueError(f"expected {what} as real numbers, got an array of {value.dtype}")
        value = torch.as_tensor(value)
    if value.is_complex() or not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"expected {what} as real numbers, got {value.dtype}")
    return value.double()


@dataclass
class Statistics:
    """A set's ``mean`` ``(dim,)`` and unbiased ``cov`` ``(dim, dim)`` in float64, how many images ``count`` they
    came from, the ``resize_mode`` and ``weights`` that made the features (None when unknown, as in files from other
    tools), and the centred ``features`` themselves while there are fewer images than dimensions (for the exact
    distance)."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int | None = None
    resize_mode: str | None = None
    weights: str | None = None
    features: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.mean = _as_tensor(self.mean, "the mean")
        self.cov = _as_tensor(self.cov, "the covariance")

    def __iter__(self) -> Any:
        """``mean, cov = statistics``, as the ``(mean, cov)`` pairs of pytorch-fid and earlier versions."""
        return iter((self.mean, self.cov))

    def __getitem__(self, index: int) -> torch.Tensor:
        return (self.mean, self.cov)[index]


def feature_statistics(features: Array) -> Statistics:
    """The mean and covariance (unbiased, as ``numpy.cov``) of ``(n, dim)`` features, in float64; a dataset's
    statistics can be kept and compared with many others. Unpacks as ``mean, cov = feature_statistics(x)``."""
    accumulator = FeatureStatistics()
    accumulator.update(features)
    return accumulator.compute()


class FeatureStatistics:
    """Mean and covariance gathered batch by batch in float64 (``update`` then ``compute``), for sets that do not
    fit in memory; the float32 features of each batch are summed in float64, so the batch size changes the result
    by rounding in the last digits only."""

    def __init__(self, resize_mode: str | None = None, weights: str | None = None) -> None:
        self.resize_mode, self.weights = resize_mode, weights
        self.count = 0
        self.total: torch.Tensor | None = None
        self.products: torch.Tensor | None = None
        self.kept: list[torch.Tensor] | None = []  # the features, while fewer than their dimension

    def update(self, features: Array) -> None:
        """Add ``(n, dim)`` features."""
        features = _as_tensor(features, "features")
        if features.dim() != 2:
            raise ValueError(f"expected (n, dim) features, got shape {list(features.shape)}")
        if not bool(torch.isfinite(features).all()):
            bad = int((~torch.isfinite(features)).any(1).sum())
            raise ValueError(
                f"the features hold NaN or infinite values ({bad} of {features.shape[0]} rows): their statistics "
                "and FID would be NaN; check the images and the model they came from"
            )
        if self.total is None:
            self.total = features.new_zeros(features.shape[1])
            self.products = features.new_zeros(features.shape[1], features.shape[1])
        elif features.shape[1] != self.total.shape[0]:
            raise ValueError(f"features of {features.shape[1]} dimensions after {self.total.shape[0]} before")
        self.count += features.shape[0]
        self.total += features.sum(0)
        self.products += features.T @ features
        if self.kept is not None:
            self.kept.append(features)
            if self.count > features.shape[1]:
                self.kept = None

    def compute(self) -> Statistics:
        """The statistics of everything added so far (2 or more images)."""
        if self.count < 2 or self.total is None:
            raise ValueError(f"FID statistics need 2 or more images, got {self.count}")
        mean = self.total / self.count
        cov = (self.products - self.count * torch.outer(mean, mean)) / (self.count - 1)
        cov = (cov + cov.T) / 2
        features = torch.cat(self.kept) - mean if self.kept is not None else None
        return Statistics(mean, cov, self.count, self.resize_mode, self.weights, features)


def _checked(statistics: Any, which: str) -> Statistics:
    """A set given as features, ``Statistics`` or a ``(mean, cov)`` pair, as checked ``Statistics``."""
    if isinstance(statistics, Statistics):
        result = statistics
    elif isinstance(statistics, tuple):
        if len(statistics) != 2:
            raise ValueError(f"expected set {which} as (n, dim) features or a (mean, covariance) pair")
        result = Statistics(*(_as_tensor(v, f"set {which}'s statistics") for v in statistics))
    else:
        features = _as_tensor(statistics, f"set {which}")
        if features.dim() != 2 or features.shape[0] < 2:
            raise ValueError(f"set {which}: expected (n, dim) features with n >= 2, got shape {list(features.shape)}")
        result = feature_statistics(features)
    mean, cov = result.mean, result.cov
    if mean.dim() != 1:
        raise ValueError(f"set {which}: the mean must be 1-D (dim,), got shape {tuple(mean.shape)}")
    if cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(
            f"set {which}: mean {tuple(mean.shape)} but covariance {tuple(cov.shape)}; the covariance must be "
            f"({mean.shape[0]}, {mean.shape[0]})"
        )
    for name, value in (("mean", mean), ("covariance", cov)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"set {which}: the {name} holds NaN or infinite values")
    scale = float(cov.abs().max())
    if float((cov - cov.T).abs().max()) > COVARIANCE_TOLERANCE * scale:
        raise ValueError(f"set {which}: the covariance is not symmetric, so it is not a covariance matrix")
    return result


def _check_psd(values: torch.Tensor, which: str) -> None:
    """Refuse a covariance with an eigenvalue clearly below zero (beyond rounding): it is not a covariance."""
    if values.numel() and float(values[0]) < -COVARIANCE_TOLERANCE * max(float(values[-1]), 0.0):
        raise ValueError(
            f"set {which}: the covariance is not positive semi-definite (eigenvalue {float(values[0]):.3g}, largest "
            f"{float(values[-1]):.3g}), so it is not a covariance matrix"
        )


def _root(cov: torch.Tensor) -> torch.Tensor:
    """``R`` with ``R R^T = cov`` (the symmetric square root, rounding below 0 at 0)."""
    values, vectors = torch.linalg.eigh(cov)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def _small(statistics: Statistics) -> bool:
    return statistics.features is not None and statistics.features.shape[0] <= statistics.mean.shape[0]


def _trace_sqrt_product(a: Statistics, b: Statistics) -> torch.Tensor:
    """``tr((S_a S_b)^(1/2))``. For sets with fewer images than dimensions it is a sum of singular values built from
    the centred features ``A`` (``S_a = A^T A / (n - 1)``): of ``A B^T`` when both are at hand, else of ``A S_b^(1/2)``,
    exact where the square root of an eigenvalue that is zero up to rounding would add its square root's worth of
    error. Otherwise it sums the square roots of the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``."""
    _check_psd(torch.linalg.eigvalsh(a.cov), "a")
    _check_psd(torch.linalg.eigvalsh(b.cov), "b")
    if _small(a) and _small(b):
        scale = ((a.features.shape[0] - 1) * (b.features.shape[0] - 1)) ** 0.5
        return torch.linalg.svdvals(a.features @ b.features.T).sum() / scale
    if _small(a) or _small(b):
        side, other = (a, b) if _small(a) else (b, a)
        return torch.linalg.svdvals(side.features @ _root(other.cov)).sum() / (side.features.shape[0] - 1) ** 0.5
    root_a = _root(a.cov)
    middle = root_a @ b.cov @ root_a
    return torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()


def frechet_distance(a: Any, b: Any) -> float:
    """FID between two sets: each is ``(n, dim)`` features (torch or numpy), ``Statistics``, or a ``(mean, cov)``
    pair; ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` in float64, never below 0 (which rounding
    alone would give for identical sets). Statistics made with different resize modes are refused."""
    a, b = _checked(a, "a"), _checked(b, "b")
    if a.mean.shape != b.mean.shape:
        raise ValueError(
            f"the two sets have features of different sizes: {tuple(a.mean.shape)} and {tuple(b.mean.shape)}"
        )
    if a.resize_mode and b.resize_mode and a.resize_mode != b.resize_mode:
        raise ValueError(
            f"set a was resized with {a.resize_mode!r} and set b with {b.resize_mode!r}: FIDs are comparable only "
            "with one resize mode; compute both sets' features with the same mode"
        )
    if torch.equal(a.mean, b.mean) and torch.equal(a.cov, b.cov):
        return 0.0  # identical sets, where rounding in the formula would leave a small positive figure
    difference = a.mean - b.mean
    trace_sqrt = _trace_sqrt_product(a, b)
    return max(0.0, float(difference @ difference + a.cov.trace() + b.cov.trace() - 2 * trace_sqrt))


def save_statistics(path: str | os.PathLike, statistics: Statistics) -> None:
    """Write ``statistics`` as pytorch-fid's ``.npz`` (``mu`` and ``sigma``, float64), with the image count, resize
    mode and weights beside them; pytorch-fid and clean-fid read such a file as their own."""
    import numpy as np

    extra = {
        name: np.array(value)
        for name, value in (
            ("count", statistics.count),
            ("resize_mode", statistics.resize_mode),
            ("weights", statistics.weights),
        )
        if value is not None
    }
    with open(path, "wb") as file:  # np.savez would add ".npz" to another suffix
        np.savez(file, mu=statistics.mean.numpy(), sigma=statistics.cov.numpy(), **extra)


def load_statistics(path: str | os.PathLike) -> Statistics:
    """Statistics from an ``.npz`` with ``mu`` and ``sigma`` (pytorch-fid's, TTUR's and clean-fid's published files,
    or ``save_statistics``'s). A file without a resize mode (other tools') warns that it cannot be checked."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} cannot be read as an .npz statistics file ({error})") from None
    missing = [key for key in ("mu", "sigma") if key not in arrays]
    if missing:
        raise ValueError(
            f"{path} holds {', '.join(arrays) or 'nothing'}, not FID statistics: pytorch-fid's layout has 'mu' and "
            f"'sigma' (missing {', '.join(missing)})"
        )
    mean, cov = arrays["mu"], arrays["sigma"]
    info = {key: arrays[key].item() for key in ("count", "resize_mode", "weights") if key in arrays}
    statistics = _checked(Statistics(mean, cov, info.get("count"), info.get("resize_mode"), info.get("weights")),
                          str(path))  # fmt: skip
    if statistics.resize_mode is None:
        warnings.warn(
            f"{path} does not say which resize made its features (a file from another tool): FID against it is "
            "right only if your images are resized the same way (TTUR's published files: resize_mode='tf')",
            stacklevel=2,
        )
    return statistics
