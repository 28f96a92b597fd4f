"""Inception Score (Salimans et al. 2016, arXiv:1606.03498) and Kernel Inception Distance (Bińkowski et al. 2018,
arXiv:1801.01401) from the same pass as FID: the 1008-class logits and the pool3 features. Both follow
torch-fidelity's published formulas and random draws (seed 2020), so the figures equal its own on the same features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["inception_score", "kernel_inception_distance"]


def _two_dimensional(values: Any, what: str) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 2 or values.shape[0] < 2:
        raise ValueError(f"expected {what} as an (n, dim) array with n >= 2, got shape {list(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"the {what} hold NaN or infinite values")
    return values


def inception_score(logits: Any, splits: int = 10, shuffle: bool = True, seed: int = 2020) -> tuple[float, float]:
    """Mean and standard deviation over ``splits`` parts of ``exp(E_x KL(p(y|x) || p(y)))``, from ``(n, classes)``
    logits (``FIDResult`` uses the FID network's 1008 logits without the classifier's bias, as torch-fidelity
    does). The images are shuffled first with NumPy's ``RandomState(seed)``, as torch-fidelity shuffles them."""
    logits = _two_dimensional(logits, "logits")
    if not 1 <= splits <= logits.shape[0]:
        raise ValueError(f"splits must be from 1 to the number of images ({logits.shape[0]}), got {splits}")
    count = logits.shape[0]
    if shuffle:
        logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(count))]
    logits = logits.double()
    probabilities, log_probabilities = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for index in range(splits):
        part = slice(index * count // splits, (index + 1) * count // splits)
        p, log_p = probabilities[part], log_probabilities[part]
        marginal = p.mean(dim=0, keepdim=True)
        terms = torch.where(p > 0, p * (log_p - marginal.log()), 0.0)  # 0 log 0 = 0 where a softmax underflows
        scores.append(terms.sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def _polynomial_mmd(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """The unbiased MMD^2 estimate with the kernel ``(gamma x.y + coef0)^degree`` (Bińkowski et al., eq. 4)."""
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    m = x.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features_a: Any,
    features_b: Any,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 2020,
) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased polynomial-kernel MMD^2 over ``subsets`` random subsets of
    ``subset_size`` images drawn from each set (``gamma`` defaults to ``1 / dim``), in float64. The subsets are drawn
    as torch-fidelity draws them (``RandomState(seed).choice`` without replacement, set a then set b)."""
    a = _two_dimensional(features_a, "features of set a").double().numpy()
    b = _two_dimensional(features_b, "features of set b").double().numpy()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two sets have features of different sizes: {a.shape[1]} and {b.shape[1]}")
    smallest = min(a.shape[0], b.shape[0])
    if not 2 <= subset_size <= smallest:
        raise ValueError(
            f"KID's subset size ({subset_size}) must be from 2 to the smaller set's size ({smallest} images): pass "
            f"a smaller subset_size (--kid-subset-size), or more images"
        )
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(a.shape[0], subset_size, replace=False)]
        y = b[rng.choice(b.shape[0], subset_size, replace=False)]
        values.append(_polynomial_mmd(x, y, degree, gamma, coef0))
    return float(np.mean(values)), float(np.std(values))
