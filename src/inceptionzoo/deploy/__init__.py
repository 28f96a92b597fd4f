"""Everything that makes a trained model run faster, above the models: ``optimize_for_inference(model)`` returns a
copy that computes the same function faster, run by one of the engines of ``ENGINES``.

``passes`` (BatchNorm folding, fused ReLU, merged branch convolutions) is at the bottom; ``int8`` (post-training
static quantization) and ``onnxruntime`` (ONNX export and ONNX Runtime) build on it; this module ties them together
in one table. An engine is a function ``engine(model, dtype, *, compile, merge_branches, calibration_batches)``
returning the fast module, with ``precision`` and ``precision_reason`` set; a new engine is a module of its own plus
one ``register_engine(name, fn)`` call (or an entry in ``ENGINES`` below), so ``optimize_for_inference`` never
names an engine itself.
"""

import copy
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from ..precision import is_int8
from .int8 import QuantizedModel, quantize
from .onnxruntime import OnnxRuntimeModel, export_onnx, onnxruntime_engine
from .passes import InferenceModel, fold_batchnorm, fuse_relu, merge_parallel_convolutions

__all__ = [
    "ENGINES",
    "OnnxRuntimeModel",
    "QuantizedModel",
    "export_onnx",
    "optimize_for_inference",
    "quantize",
    "register_engine",
]

_logger = logging.getLogger(__name__)


_FLOAT_DTYPES = {None: torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _resolve_dtype(dtype: Any, device: torch.device) -> tuple[Any, str]:
    """The dtype to run in, and why: an explicit dtype as given, ``"auto"`` by ``precision.choose_precision``."""
    if dtype == "auto":
        from ..precision import choose_precision

        choice = choose_precision(device)
        return choice.dtype, f"auto: {choice.reason}"
    if is_int8(dtype):
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


def torch_engine(
    model: nn.Module, dtype: Any = "auto", *, compile: bool = False, merge_branches: bool = True,
    calibration_batches: Any = None,
) -> nn.Module:  # fmt: skip
    """The default engine: the ``passes`` rewrites in the resolved float dtype, or ``int8.quantize`` for int8."""
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype, reason = _resolve_dtype(dtype, device)
    if dtype == torch.qint8:
        if calibration_batches is None:
            raise ValueError("int8 needs calibration_batches: a few batches of real, preprocessed input images")
        fast = quantize(model, calibration_batches)
        fast.precision_reason = reason
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
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    if not compile:
        return fast
    # inductor's freezing treats the weights as constants (folded, pre-packed for oneDNN); it applies to calls made
    # under torch.no_grad() / torch.inference_mode(), which is how inference runs
    compiled = _compile(fast, device)
    compiled.precision, compiled.precision_reason = fast.precision, reason
    return compiled


Engine = Callable[..., nn.Module]

# engine name -> the function that makes the fast copy; the one place engines are listed
ENGINES: dict[str, Engine] = {
    "torch": torch_engine,
    "onnxruntime": onnxruntime_engine,
}


def register_engine(name: str, engine: Engine, *, override: bool = False) -> Engine:
    """Make ``engine`` reachable as ``optimize_for_inference(model, engine=name)``; a name that is taken is an error
    unless ``override=True``. Returns ``engine``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an engine's name is a non-empty string, got {name!r}")
    if not callable(engine):
        raise TypeError(f"engine {name!r} must be callable, got {type(engine).__name__}")
    if name in ENGINES and ENGINES[name] is not engine and not override:
        raise ValueError(f"an engine named {name!r} is registered already; pass override=True to replace it")
    ENGINES[name] = engine
    return engine


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
    compiles). ``engine`` names an entry of ``ENGINES``: ``"torch"`` (the default, all of the above) or
    ``"onnxruntime"``, which exports the model and runs it with ONNX Runtime instead (the ``onnx`` extra; fp32, or
    int8 through ONNX Runtime's static quantization); ``register_engine`` adds others. The result's ``precision``
    and ``precision_reason`` say what was chosen and why. The original model is left untouched.
    """
    run = ENGINES.get(engine) if isinstance(engine, str) else None
    if run is None:
        raise ValueError(f"unknown engine {engine!r}; the registered engines are: {', '.join(sorted(ENGINES))}")
    fast = run(model, dtype, compile=compile, merge_branches=merge_branches, calibration_batches=calibration_batches)
    _logger.info(
        "optimize_for_inference: %s engine, %s (%s)",
        engine,
        getattr(fast, "precision", "?"),
        getattr(fast, "precision_reason", ""),
    )
    return fast
