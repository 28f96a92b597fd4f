"""Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500) with ``inception_v3_fid``.

The features are pytorch-fid's: images in [0, 1] resized to 299x299 by bilinear interpolation of the tensor
(``F.interpolate``, ``align_corners=False``, no antialiasing), scaled to [-1, 1], and pooled from ``Mixed_7c``
(2048 values, "pool3"). FID depends on that resize: the same images resized otherwise (PIL's bicubic, an
antialiased resize, another crop) give other features and another FID, so compare only figures computed the same way.
The distance itself is computed in float64 with torch (an eigen-decomposition for the matrix square root) instead of
SciPy's ``sqrtm``, so that no SciPy is needed; the two agree to about 1e-6 relative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FID_INPUT_SIZE", "feature_statistics", "fid_features", "frechet_distance"]

FID_INPUT_SIZE = (299, 299)


def fid_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The ``(batch, 2048)`` pool3 features of ``images`` (``(batch, 3, height, width)``, values in [0, 1]), resized
    and scaled exactly as pytorch-fid does. ``model`` is ``create_model("inception_v3_fid", pretrained=True)``."""
    if model.training:
        raise ValueError("FID features come from the model in eval mode (BatchNorm's running statistics): call .eval()")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (batch, 3, height, width) with values in [0, 1], got {shape}")
    with torch.inference_mode():
        x = F.interpolate(images, size=FID_INPUT_SIZE, mode="bilinear", align_corners=False)
        x = 2 * x - 1
        return model.forward_head(model.forward_features(x), pre_logits=True)


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and covariance (unbiased, as ``numpy.cov``) of ``(n, dim)`` features, in float64; a dataset's
    statistics can be kept and compared with many others."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"expected (n, dim) features with n >= 2, got shape {list(features.shape)}")
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(
    a: torch.Tensor | tuple[torch.Tensor, torch.Tensor], b: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
) -> float:
    """FID between two sets: each is ``(n, dim)`` features or their ``feature_statistics``.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``, with ``tr((S_a S_b)^(1/2))`` taken as the sum of
    the square roots of the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)`` (symmetric, so ``eigh`` applies).
    """
    mean_a, cov_a = a if isinstance(a, tuple) else feature_statistics(a)
    mean_b, cov_b = b if isinstance(b, tuple) else feature_statistics(b)
    if mean_a.shape != mean_b.shape:
        raise ValueError(f"the two sets have features of different sizes: {mean_a.shape[0]} and {mean_b.shape[0]}")
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    difference = mean_a - mean_b
    return float(difference @ difference + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt)
