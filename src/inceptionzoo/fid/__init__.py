"""Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500), Inception Score and KID with
``inception_v3_fid``, pytorch-fid's network built from the zoo's blocks.

- ``resize``: the three resize modes (``pytorch-fid``, ``tf``, ``clean``), each exact to its reference library.
- ``network``: the FID network with its published weights required, on the fast fp32 path by default.
- ``statistics``: mean and covariance in float64 batch by batch, pytorch-fid's ``.npz``, the Fréchet distance.
- ``scores``: Inception Score and KID, torch-fidelity's formulas.
- ``compute``: ``compute(a, b)`` from folders, tars, tensors or statistics files (``inceptionzoo fid A B``).
"""

from .compute import FewImagesWarning, FIDResult, compute, set_statistics
from .network import FIDNetwork, RandomWeightsWarning, fid_features, fid_network
from .resize import DEFAULT_RESIZE_MODE, FID_INPUT_SIZE, RESIZE_MODES, resize_for_fid
from .scores import inception_score, kernel_inception_distance
from .statistics import (
    FeatureStatistics,
    Statistics,
    feature_statistics,
    frechet_distance,
    load_statistics,
    save_statistics,
)

__all__ = [
    "DEFAULT_RESIZE_MODE",
    "FID_INPUT_SIZE",
    "RESIZE_MODES",
    "FIDNetwork",
    "FIDResult",
    "FeatureStatistics",
    "FewImagesWarning",
    "RandomWeightsWarning",
    "Statistics",
    "compute",
    "feature_statistics",
    "fid_features",
    "fid_network",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "load_statistics",
    "resize_for_fid",
    "save_statistics",
    "set_statistics",
]
