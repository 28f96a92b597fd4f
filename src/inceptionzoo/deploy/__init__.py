"""Everything that makes a trained model run faster, above the models: ``optimize_for_inference(model)`` returns a
copy that computes the same function faster (``passes``: BatchNorm folding, fused ReLU, merged branch convolutions;
``int8``: post-training static quantization; ``onnxruntime``: ONNX export and ONNX Runtime).
"""

import copy
import logging
from typing import Any

import torch
from torch import fx, nn

from .int8 import QuantizedModel, quantize
from .onnxruntime import OnnxRuntimeModel, export_onnx
from .passes import InferenceModel, fold_batchnorm, fuse_relu, merge_parallel_convolutions

__all__ = ["OnnxRuntimeModel", "QuantizedModel", "export_onnx", "optimize_for_inference", "quantize"]

_logger = logging.getLogger(__name__)


_INT8 = ("int8", torch.qint8)
_FLOAT_DTYPES = {None: torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _resolve_dtype(dtype: Any, device: torch.device) -> tuple[Any, str]:
    """The dtype to run in, and why: an explicit dtype as given, ``"auto"`` by ``precision.choose_precision``."""
    if dtype == "auto":
        from ..precision import choose_precision

        choice = choose_precision(device)
        return choice.dtype, f"auto: {choice.reason}"
    if dtype in _INT8:
        return torch.qint8, "asked for int8"
    resolved = _FLOAT_DTYPES.get(dtype, dtype) if not isinstance(dtype, torch.dtype) else dtype
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be 'auto', 'int8', torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")
    return resolved, f"asked for {_dtype_name(resolved)}"


def _compile(fast: nn.Module, device: torch.device) -> nn.Module:
    """torch.compile with inductor's weight freezing; on a GPU also max-autotune and CUDA graphs (one graph per
    input shape, recorded on its first calls: the fixed batch sizes of a serving loop)."""
    options: dict[str, Any] = {"freezing": True}
    if device.type == "cuda":
        options.update({"max_autotune": True, "triton.cudagraphs": True})
    return torch.compile(fast, options=options)


def optimize_for_inference(
    model: nn.Module,
    dtype: Any = "auto",
    compile: bool = False,
    merge_branches: bool = True,
    calibration_batches: Any = None,
    engine: str = "torch",
) -> nn.Module:
    """A copy of ``model`` for fast eval-mode inference, with the same outputs (up to rounding).

    BatchNorm is folded into convolutions, parallel 1x1 branch convolutions are merged (``merge_branches``), weights
    and activations use channels_last. ``dtype="auto"`` (the default) runs in the precision that is fastest on the
    model's device (``precision.choose_precision``: bf16 on CPUs with AMX, or where a cached probe measured it
    faster, else fp32; bf16 or fp16 on GPUs); an explicit ``torch.float32`` / ``torch.bfloat16`` / ``torch.float16``
    is always respected, and ``"int8"`` / ``torch.qint8`` quantizes with ``calibration_batches`` (``quantize``).
    Outputs come back as float32. ``compile=True`` wraps the result in ``torch.compile`` with inductor's weight
    freezing (on a GPU with max-autotune and CUDA graphs; call it under ``torch.inference_mode()``; the first call
    compiles). ``engine="onnxruntime"`` exports the model and runs it with ONNX Runtime instead (the ``onnx``
    extra; fp32, or int8 through ONNX Runtime's static quantization). The result's ``precision`` and
    ``precision_reason`` say what was chosen and why. The original model is left untouched.
    """
    if engine not in ("torch", "onnxruntime"):
        raise ValueError(f"engine must be 'torch' or 'onnxruntime', got {engine!r}")
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if engine == "onnxruntime":
        int8 = dtype in _INT8
        if dtype not in ("auto", None, torch.float32, "float32", *_INT8):
            raise ValueError(f"the onnxruntime engine runs float32 or int8, not {dtype!r}")
        fast = OnnxRuntimeModel.from_model(model, int8=int8, calibration_batches=calibration_batches)
        fast.precision_reason = "asked for int8" if int8 else "ONNX Runtime runs float32 on the CPU"
        _logger.info("optimize_for_inference: ONNX Runtime, %s (%s)", fast.precision, fast.precision_reason)
        return fast
    dtype, reason = _resolve_dtype(dtype, device)
    if dtype == torch.qint8:
        if calibration_batches is None:
            raise ValueError("int8 needs calibration_batches: a few batches of real, preprocessed input images")
        fast = quantize(model, calibration_batches)
        fast.precision_reason = reason
        _logger.info("optimize_for_inference: int8 (%s)", reason)
        return fast
    source = model
    model = fold_batchnorm(copy.deepcopy(model).eval())
    if merge_branches or not compile:
        model = fx.symbolic_trace(model)
        if not compile:  # inductor fuses activations into its own oneDNN calls
            fuse_relu(model)
        if merge_branches:
            merge_parallel_convolutions(model)
    model = model.to(memory_format=torch.channels_last)
    run_dtype = None if dtype == torch.float32 else dtype
    if run_dtype is not None:
        model = model.to(run_dtype)
    fast = InferenceModel(model, run_dtype, source).eval()
    fast.precision, fast.precision_reason = _dtype_name(dtype), reason
    _logger.info("optimize_for_inference: %s (%s)", fast.precision, reason)
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    if not compile:
        return fast
    # inductor's freezing treats the weights as constants (folded, pre-packed for oneDNN); it applies to calls made
    # under torch.no_grad() / torch.inference_mode(), which is how inference runs
    compiled = _compile(fast, device)
    compiled.precision, compiled.precision_reason = fast.precision, reason
    return compiled
