"""The FID network as FID uses it: ``inception_v3_fid`` giving the pool3 features (and, for the Inception Score,
the 1008 logits), with its published weights required, and by default the fast fp32 inference path
(``deploy.optimize_for_inference``: BatchNorm folded, 1x1 branches merged, channels-last), whose features differ from
the plain model's by rounding only."""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..precision import is_int8
from .resize import DEFAULT_RESIZE_MODE, resize_for_fid

__all__ = ["FIDNetwork", "RandomWeightsWarning", "fid_features", "fid_network"]

FID_ARCHITECTURE = "inception_v3_fid"


class RandomWeightsWarning(UserWarning):
    """FID computed with a network that does not hold the published FID weights: the figure means nothing."""


class FIDNetwork(nn.Module):
    """``forward(x)`` gives the ``(n, 2048)`` pool3 features of resized, scaled images; ``logits(features)`` the
    1008 class logits without the classifier's bias (torch-fidelity's ``logits_unbiased``, for the Inception Score).
    ``weights`` names what it holds (the tag and the first 12 hex digits of the file's sha256), ``precision`` how it
    runs."""

    def __init__(self, features: nn.Module, classifier_weight: torch.Tensor, weights: str, precision: str) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("classifier_weight", classifier_weight.detach().float().clone())
        self.weights, self.precision = weights, precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).float()

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features.float() @ self.classifier_weight.T


def _weights_name(model: nn.Module) -> str | None:
    """``tag (sha256 prefix)`` of the published weights ``model`` was built with, None when it holds none."""
    source = getattr(model, "loaded_weights", None)
    if source is None:
        return None
    tag = (getattr(model, "pretrained_cfg", None) or {}).get("tag") or "?"
    digest = hashlib.sha256()
    with open(Path(source), "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return f"{tag} (sha256 {digest.hexdigest()[:12]})"


def fid_network(
    model: nn.Module | None = None,
    fast: bool = True,
    dtype: Any = torch.float32,
    allow_random_weights: bool = False,
    engine: str = "torch",
    calibration_images: Iterable[torch.Tensor] | None = None,
) -> FIDNetwork:
    """The FID network: ``model`` (an ``inception_v3_fid``; a ``FIDNetwork`` is returned as it is), or one built
    with its published weights (``create_model("inception_v3_fid", pretrained=True)``, fetched once, then read from
    the cache offline).

    A model without the published weights is refused, since its FID is meaningless; ``allow_random_weights=True``
    (for tests) lets it run and warns with every figure. ``fast`` runs the fp32 fast path; ``dtype=torch.bfloat16``
    is faster still on some CPUs but moves FID (docs/fid.md gives the drift), so it is only used when asked for.
    ``engine="onnxruntime"`` runs the fast path with ONNX Runtime instead (the ``onnx`` extra).
    ``dtype="int8"`` quantizes the network (``deploy.quantize``, or ONNX Runtime's static quantization) on
    ``calibration_images``, batches of resized network input (``resize_for_fid``): the fastest path on CPUs with int8
    dot products, and the one that moves FID most (docs/fid.md); ``compute`` calibrates it on the first set's images.
    """
    if isinstance(model, FIDNetwork):
        return model
    if model is None:
        from .. import create_model  # the package registers the models on first use
        from ..hub import WeightsDownloadError

        try:
            model = create_model(FID_ARCHITECTURE, pretrained=True)
        except WeightsDownloadError:  # not cached offline, or not reachable: random weights only where allowed
            if not allow_random_weights:
                raise
            model = create_model(FID_ARCHITECTURE)
    architecture = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    if architecture != FID_ARCHITECTURE:
        raise ValueError(
            f"FID's features come from {FID_ARCHITECTURE}, the network the published FIDs used; got "
            f"{architecture or type(model).__name__}"
        )
    weights = _weights_name(model)
    if weights is None:
        if not allow_random_weights:
            raise ValueError(
                f"this {FID_ARCHITECTURE} holds no published weights, so its FID would mean nothing: build it with "
                f"create_model('{FID_ARCHITECTURE}', pretrained=True) (run `inceptionzoo download "
                f"{FID_ARCHITECTURE}` once where the Hub can be reached), or leave model out"
            )
        weights = "random (not the FID weights)"
    if not (dtype in (torch.float32, torch.bfloat16) or is_int8(dtype)):
        raise ValueError(
            f"FID runs in torch.float32 (exact), or torch.bfloat16 or 'int8' (faster, they move FID); got {dtype!r}"
        )
    calibration = list(calibration_images) if calibration_images is not None else []
    if is_int8(dtype) and not calibration:
        raise ValueError(
            "int8 FID needs calibration_images: a few batches of the images to measure, resized with "
            "resize_for_fid (compute(..., dtype='int8') takes them from the first set)"
        )
    classifier = model.get_classifier().weight
    body = copy.deepcopy(model).eval()
    body.reset_classifier(0)
    if is_int8(dtype):
        from ..deploy import optimize_for_inference
        from ..deploy.int8 import Int8AgreementWarning

        with warnings.catch_warnings():  # its top-1 agreement check means nothing for a network without a classifier
            warnings.simplefilter("ignore", category=Int8AgreementWarning)
            body = optimize_for_inference(body, dtype="int8", calibration_batches=calibration, engine=engine)
        precision = f"int8 (calibrated on {sum(len(batch) for batch in calibration)} images)"
    else:
        if fast or dtype != torch.float32:
            from ..deploy import optimize_for_inference

            body = optimize_for_inference(body, dtype=dtype, engine=engine)
        precision = ("fast " if fast else "") + str(dtype).removeprefix("torch.")
    if engine != "torch":
        precision += f" ({engine})"
    return FIDNetwork(body, classifier, weights, precision).eval()


def fid_features(model: nn.Module, images: torch.Tensor, resize_mode: str = DEFAULT_RESIZE_MODE) -> torch.Tensor:
    """The ``(batch, 2048)`` pool3 features of ``images`` (``(batch, 3, height, width)``, uint8 or floats in [0, 1]),
    resized and scaled by ``resize_mode`` (``resize.RESIZE_MODES``). ``model`` is an ``inception_v3_fid`` in eval
    mode, a ``fid_network``, or any module that maps the 299x299 input to ``(batch, 2048)`` (an optimized copy)."""
    if model.training:
        raise ValueError("FID features come from the model in eval mode (BatchNorm's running statistics): call .eval()")
    x = resize_for_fid(images, resize_mode)
    with torch.inference_mode():
        if hasattr(model, "forward_head"):
            features = model.forward_head(model.forward_features(x), pre_logits=True)
        else:
            features = model(x)
    if features.dim() != 2:
        raise ValueError(f"the model gave features of shape {list(features.shape)}; FID needs (batch, dim)")
    if getattr(model, "num_classes", 0) and features.shape[1] == model.num_classes:
        raise ValueError(
            f"the model gave its {model.num_classes} class logits, not pool features: call reset_classifier(0) "
            "before optimizing it, or use fid_network(model), which does both"
        )
    if not bool(torch.isfinite(features).all()):
        raise ValueError(
            "the model gave NaN or infinite features for finite images: build it with "
            "create_model('inception_v3_fid', pretrained=True) so its weights are loaded, and run it in float32"
        )
    return features.float()
