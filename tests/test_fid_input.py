"""FID's inputs are checked: non-finite images, features or statistics, wrong shapes and covariances that are not
covariances are refused with messages giving what was passed, never turned into a silent NaN or a huge figure."""

import numpy as np
import pytest
import torch
from torch import nn

from inceptionzoo.fid import feature_statistics, fid_features, frechet_distance

DIM = 8


class PooledMean(nn.Module):
    """A stand-in for ``inception_v3_fid`` with its feature interface: each channel's mean, times ``scale``."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean((2, 3))


def statistics(seed: int = 0, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return feature_statistics(torch.randn(n, DIM, generator=generator, dtype=torch.float64))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_images_are_refused(value):
    images = torch.rand(2, 3, 16, 16)
    images[1, 0, 3, 3] = value
    with pytest.raises(ValueError, match=r"images hold NaN or infinite values"):
        fid_features(PooledMean().eval(), images)


def test_non_finite_features_are_refused():
    with pytest.raises(ValueError, match=r"NaN or infinite features.*weights"):
        fid_features(PooledMean(scale=float("nan")).eval(), torch.rand(2, 3, 16, 16))
    features = torch.randn(10, DIM)
    features[3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"features hold NaN or infinite values"):
        feature_statistics(features)


def test_numpy_statistics_give_the_torch_figure():
    a, b = statistics(0), statistics(1)
    expected = frechet_distance(a, b)
    as_numpy = [tuple(t.numpy() for t in s) for s in (a, b)]
    assert frechet_distance(*as_numpy) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(as_numpy[0], b) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("mean", "cov", "message"),
    [
        (torch.zeros(DIM), torch.eye(DIM)[:, :-1], rf"mean \({DIM},\) but covariance \({DIM}, {DIM - 1}\)"),
        (torch.zeros(1, DIM), torch.eye(DIM), rf"mean must be 1-D.*\(1, {DIM}\)"),
        (torch.zeros(DIM), torch.eye(DIM + 1), rf"mean \({DIM},\) but covariance \({DIM + 1}, {DIM + 1}\)"),
        (torch.zeros(DIM), torch.ones(DIM), rf"mean \({DIM},\) but covariance \({DIM},\)"),
    ],
)
def test_statistics_of_the_wrong_shape_are_named(mean, cov, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance((mean, cov), statistics())


def test_sets_of_different_dimensions_give_both_shapes():
    mean, cov = statistics()
    with pytest.raises(ValueError, match=rf"different sizes: \({DIM},\) and \({DIM - 2},\)"):
        frechet_distance((mean, cov), (mean[:-2], cov[:-2, :-2]))


def covariance_with(eigenvalue: float) -> torch.Tensor:
    """A covariance whose smallest eigenvalue is replaced by ``eigenvalue`` times its largest."""
    values, vectors = torch.linalg.eigh(statistics()[1])
    values[0] = eigenvalue * values[-1]
    return (vectors * values) @ vectors.T


def test_covariances_that_are_not_covariances_are_refused():
    mean, cov = statistics()
    not_finite = cov.clone()
    not_finite[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"covariance holds NaN or infinite values"):
        frechet_distance((mean, not_finite), statistics(1))
    skewed = cov.clone()
    skewed[0, 1] += 0.5 * cov.abs().max()
    with pytest.raises(ValueError, match=r"covariance is not symmetric"):
        frechet_distance(statistics(1), (mean, skewed))
    with pytest.raises(ValueError, match=r"covariance is not positive semi-definite"):
        frechet_distance((mean, covariance_with(-0.5)), statistics(1))
    # a tiny negative eigenvalue is rounding, as in the covariance of fewer samples than dimensions
    assert frechet_distance((mean, covariance_with(-1e-9)), statistics(1)) > 0


def test_identical_sets_give_zero_not_a_negative_figure():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 256, generator=generator, dtype=torch.float32) * 10  # fewer samples than dimensions
    stats = feature_statistics(features)
    distance = frechet_distance(stats, stats)
    assert 0.0 <= distance <= 1e-6 * float(stats[1].trace())
    assert frechet_distance(np.asarray(features), features) >= 0.0
