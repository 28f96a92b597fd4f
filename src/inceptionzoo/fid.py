"""Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500) with ``inception_v3_fid``.

The features are pytorch-fid's: images in [0, 1] resized to 299x299 by bilinear interpolation of the tensor
(``F.interpolate``, ``align_corners=False``, no antialiasing), scaled to [-1, 1], and pooled from ``Mixed_7c``
(2048 values, "pool3"). FID depends on that resize: the same images resized otherwise (PIL's bicubic, an
antialiased resize, another crop) give other features and another FID, so compare only figures computed the same way.
The distance itself is computed in float64 with torch (an eigen-decomposition for the matrix square root) instead of
SciPy's ``sqrtm``, so that no SciPy is needed; the two agree to about 1e-6 relative.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    import numpy as np

    Array = torch.Tensor | np.ndarray
    Statistics = tuple[Array, Array]

__all__ = ["FID_INPUT_SIZE", "feature_statistics", "fid_features", "frechet_distance"]

FID_INPUT_SIZE = (299, 299)
# how far from symmetric and positive semi-definite a covariance may be, relative to its largest entry or eigenvalue:
# rounding (float32 statistics, fewer samples than dimensions) stays far below it, a matrix that is not a covariance
# far above
COVARIANCE_TOLERANCE = 1e-4


def fid_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The ``(batch, 2048)`` pool3 features of ``images`` (``(batch, 3, height, width)``, values in [0, 1]), resized
    and scaled exactly as pytorch-fid does. ``model`` is ``create_model("inception_v3_fid", pretrained=True)``."""
    if model.training:
        raise ValueError("FID features come from the model in eval mode (BatchNorm's running statistics): call .eval()")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (batch, 3, height, width) with values in [0, 1], got {shape}")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise ValueError(
            f"the images hold NaN or infinite values ({bad} of {images.shape[0]} images): their features and FID "
            "would be NaN; check how they were decoded or generated"
        )
    with torch.inference_mode():
        x = F.interpolate(images, size=FID_INPUT_SIZE, mode="bilinear", align_corners=False)
        x = 2 * x - 1
        features = model.forward_head(model.forward_features(x), pre_logits=True)
    if not bool(torch.isfinite(features).all()):
        raise ValueError(
            "the model gave NaN or infinite features for finite images: build it with "
            "create_model('inception_v3_fid', pretrained=True) so its weights are loaded, and run it in float32"
        )
    return features


def _as_tensor(value: Array, what: str) -> torch.Tensor:
    """A torch tensor (or numpy array) as a float64 tensor; anything else is named."""
    if not isinstance(value, torch.Tensor):
        if not hasattr(value, "__array__"):
            raise ValueError(f"expected {what} as a torch tensor or numpy array, got {type(value).__name__}")
        value = torch.as_tensor(value)
    return value.double()


def feature_statistics(features: Array) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and covariance (unbiased, as ``numpy.cov``) of ``(n, dim)`` features, in float64; a dataset's
    statistics can be kept and compared with many others."""
    features = _as_tensor(features, "features")
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"expected (n, dim) features with n >= 2, got shape {list(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        bad = int((~torch.isfinite(features)).any(1).sum())
        raise ValueError(
            f"the features hold NaN or infinite values ({bad} of {features.shape[0]} rows): their statistics and FID "
            "would be NaN; fid_features refuses such images and models, so check where these features came from"
        )
    return features.mean(0), torch.cov(features.T)


def _checked_statistics(statistics: Statistics, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A set's (mean, cov) as float64 tensors, with shapes and finiteness checked."""
    if len(statistics) != 2:
        raise ValueError(f"expected set {which} as (n, dim) features or a (mean, covariance) pair")
    mean, cov = (_as_tensor(v, f"set {which}'s statistics") for v in statistics)
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
    return mean, cov


def _check_psd(values: torch.Tensor, which: str) -> None:
    """Refuse a covariance with an eigenvalue clearly below zero (beyond rounding): it is not a covariance."""
    if values.numel() and float(values[0]) < -COVARIANCE_TOLERANCE * max(float(values[-1]), 0.0):
        raise ValueError(
            f"set {which}: the covariance is not positive semi-definite (eigenvalue {float(values[0]):.3g}, largest "
            f"{float(values[-1]):.3g}), so it is not a covariance matrix"
        )


def _sqrtm_psd(matrix: torch.Tensor, which: str) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    _check_psd(values, which)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: Array | Statistics, b: Array | Statistics) -> float:
    """FID between two sets: each is ``(n, dim)`` features or their ``feature_statistics`` (torch or numpy).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``, with ``tr((S_a S_b)^(1/2))`` taken as the sum of
    the square roots of the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)`` (symmetric, so ``eigh`` applies); never below
    0, which rounding alone would give for identical sets.
    """
    mean_a, cov_a = _checked_statistics(a if isinstance(a, tuple) else feature_statistics(a), "a")
    mean_b, cov_b = _checked_statistics(b if isinstance(b, tuple) else feature_statistics(b), "b")
    if mean_a.shape != mean_b.shape:
        raise ValueError(
            f"the two sets have features of different sizes: {tuple(mean_a.shape)} and {tuple(mean_b.shape)}"
        )
    root_a = _sqrtm_psd(cov_a, "a")
    _check_psd(torch.linalg.eigvalsh(cov_b), "b")
    middle = root_a @ cov_b @ root_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    difference = mean_a - mean_b
    return max(0.0, float(difference @ difference + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt))
