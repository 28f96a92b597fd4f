"""ONNX export and ONNX Runtime as an inference engine behind the library's own call.

``export_onnx(model, path)`` writes a graph with a dynamic batch dimension through torch's exporter (the dynamo
exporter, which needs ``onnxscript``), optionally int8 through ONNX Runtime's static quantization (QDQ, per-channel
int8 weights, uint8 activations). ``OnnxRuntimeModel`` runs such a file, or a model exported on the fly, as a
module that takes and returns torch tensors and keeps the zoo's attributes (``pretrained_cfg`` and so on), so the
preprocessing and labels stay the library's. Everything here needs the ``onnx`` extra:
``pip install "inceptionzoo[onnx]"``.
"""

import copy
import importlib
import inspect
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..precision import is_int8
from .passes import keep_model_attributes

__all__ = ["OnnxRuntimeModel", "export_onnx", "onnxruntime_engine"]

_EXTRA = 'pip install "inceptionzoo[onnx]"'


def _require(*modules: str) -> list[Any]:
    """Import ONNX's packages, or say which extra brings them."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as error:
            raise ImportError(
                f"ONNX export and the onnxruntime engine need {name}, which is not installed: {_EXTRA}"
            ) from error
    return loaded


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("input_size", (3, 224, 224)))  # type: ignore[return-value]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: tuple[int, int, int] | None = None,
    dynamic_batch: bool = True,
    opset: int | None = None,
    int8: bool = False,
    calibration_batches: Iterable[torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (eval mode) to ``path`` as ONNX, input ``(batch, *input_size)`` (default: its
    ``pretrained_cfg``'s), the batch dimension dynamic unless ``dynamic_batch=False``. ``opset`` defaults to the
    installed exporter's own. ``int8=True`` quantizes the written graph with ONNX Runtime's static quantization,
    calibrated on ``calibration_batches`` (preprocessed float images)."""
    _require("onnx", "onnxscript")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise RuntimeError(f"export_onnx needs torch.onnx.export(dynamo=True), which torch {torch.__version__} lacks")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval().float()
    example = torch.randn(2, *(input_size or _input_size(model)))
    kwargs: dict[str, Any] = {"dynamo": True, "verbose": False, "input_names": ["input"], "output_names": ["output"]}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    if opset is not None:
        kwargs["opset_version"] = opset
    target = path.with_name(path.stem + ".float.onnx") if int8 else path
    torch.onnx.export(model, (example,), str(target), external_data=False, **kwargs)
    if int8:
        if calibration_batches is None:
            raise ValueError("int8 ONNX needs calibration_batches: a few batches of real, preprocessed input images")
        _quantize_onnx(target, path, calibration_batches)
        target.unlink()
    return path


def _quantize_onnx(source: Path, target: Path, calibration_batches: Iterable[torch.Tensor]) -> None:
    """ONNX Runtime's static quantization: QDQ format, per-channel int8 weights, uint8 activations (the layout its
    x86 int8 kernels run), ranges from the calibration batches."""
    (quantization,) = _require("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .int8 import calibration_images

    prepared = source.with_name(source.stem + ".prepared.onnx")
    # ONNX's own shape inference is enough for these convolutional graphs; ONNX Runtime's symbolic one fails on some
    # of the exporter's Reshape nodes (inception_fast_cifar's head)
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)

    class Batches(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration_batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            return {"input": calibration_images(batch).float().contiguous().numpy()}

    quantization.quantize_static(
        str(prepared),
        str(target),
        Batches(),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=True,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        # a BatchNorm that no convolution folds into (one after a pooling) has a one-dimensional scale, one value per
        # channel; ONNX Runtime's quantizer takes channel axis 1 for it as for a convolution's weight, logs "Axis 1
        # is out-of-range for weight '...bn.weight'" and falls back to one scale for all channels
        extra_options={"QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}},
    )
    prepared.unlink()


class OnnxRuntimeModel(nn.Module):
    """An ONNX file run by ONNX Runtime's CPU engine as a module: torch tensors in and out, the zoo model's attributes
    kept. ``threads`` defaults to torch's thread count, so it uses the cores torch would."""

    def __init__(self, path: str | os.PathLike, source: nn.Module | None = None, threads: int | None = None) -> None:
        super().__init__()
        (onnxruntime,) = _require("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)  # a dynamic dimension is its name
        self.precision = "int8" if self._is_quantized() else "float32"
        self.precision_reason = ""
        self._folder: tempfile.TemporaryDirectory | None = None
        keep_model_attributes(self, source)

    def _is_quantized(self) -> bool:
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return any(node.op_type in ("QuantizeLinear", "QLinearConv") for node in graph.node)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        int8: bool = False,
        calibration_batches: Iterable[torch.Tensor] | None = None,
        threads: int | None = None,
        input_size: tuple[int, int, int] | None = None,
    ) -> "OnnxRuntimeModel":
        """Export ``model`` to a temporary file (kept while the result lives) and run it; ``input_size`` as in
        ``export_onnx``."""
        folder = tempfile.TemporaryDirectory(prefix="inceptionzoo-onnx-")
        path = export_onnx(
            model, Path(folder.name) / "model.onnx", input_size, int8=int8, calibration_batches=calibration_batches
        )
        runner = cls(path, source=model, threads=threads)
        runner._folder = folder
        return runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ValueError(f"the onnxruntime engine runs on the CPU; the input is on {x.device}")
        fixed = [(i, size) for i, size in enumerate(self.input_shape) if isinstance(size, int)]
        if x.dim() != len(self.input_shape) or any(x.shape[i] != size for i, size in fixed):
            shown = "x".join(str(size) if isinstance(size, int) else "N" for size in self.input_shape)
            raise ValueError(
                f"this ONNX model was exported for input of shape {shown}; got {tuple(x.shape)} (export again with "
                "export_onnx(..., input_size=(channels, height, width)) for another size)"
            )
        (out,) = self.session.run(None, {self.input_name: x.detach().float().contiguous().numpy()})
        return torch.from_numpy(out)


def onnxruntime_engine(
    model: nn.Module, dtype: Any = "auto", *, compile: bool = False, merge_branches: bool = True,
    calibration_batches: Iterable[torch.Tensor] | None = None,
) -> OnnxRuntimeModel:  # fmt: skip
    """``optimize_for_inference(model, engine="onnxruntime")``: ``model`` exported and run by ONNX Runtime, in
    float32 or (``dtype="int8"``) int8 through ONNX Runtime's static quantization. ``compile`` and
    ``merge_branches`` are the torch engine's; ONNX Runtime optimizes the graph itself."""
    int8 = is_int8(dtype)
    if not int8 and dtype not in ("auto", None, torch.float32, "float32"):
        raise ValueError(f"the onnxruntime engine runs float32 or int8, not {dtype!r}")
    fast = OnnxRuntimeModel.from_model(model, int8=int8, calibration_batches=calibration_batches)
    fast.precision_reason = "asked for int8" if int8 else "ONNX Runtime runs float32 on the CPU"
    return fast
