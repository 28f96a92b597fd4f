"""int8 inference on CPUs: ``quantize(model, calibration_batches)`` for any registry model, and the structure that
torchvision's published int8 checkpoints load into.

The path is torch's eager-mode post-training static quantization (``torch.ao.quantization.prepare`` / ``convert``)
with the x86 backend, the format torchvision's ``*_fbgemm`` weights were produced in and load into. It runs on
fbgemm / oneDNN int8 kernels as it is, without ``torch.compile``; the maintained PT2E path (torchao) gives a graph of
quantize / dequantize ops that is only fast after inductor compiles it, and it cannot read torchvision's files.
Eager mode needs three things of a model that a torch.fx pass does here, so the model classes stay as they are:
a ``QuantStub`` after the input, ``FloatFunctional`` modules for the concatenations, sums and scalings, and a
``DeQuantStub`` before each output.
"""

import contextlib
import copy
import logging
import operator
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import fx, nn
from torch.ao import quantization as ao_quantization
from torch.ao.nn import intrinsic
from torch.ao.nn.quantized import FloatFunctional

from .._validation import check_image_input
from ..layers import ConvNormAct
from .passes import fold_batchnorm, keep_model_attributes

__all__ = [
    "AGREEMENT_WARNING",
    "Int8AgreementWarning",
    "QuantizedModel",
    "load_quantized",
    "prepare_quantization",
    "quantize",
    "rename_int8_keys",
]

_logger = logging.getLogger(__name__)

BACKEND = "x86"  # torch's default int8 engine on x86 CPUs: fbgemm or oneDNN kernels, chosen per layer
# quantize measures how often the int8 model picks the float model's top-1 class on the calibration images (the
# first AGREEMENT_IMAGES of them) and warns below AGREEMENT_WARNING
AGREEMENT_WARNING = 0.9
AGREEMENT_IMAGES = 512


class Int8AgreementWarning(UserWarning):
    """The int8 model picks another top-1 class than the float model on too many of its calibration images."""


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Run with torch's quantized engine set to ``engine`` (the engine packs weights at load time and runs them),
    then restore the one before."""
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(
            f"this torch build has no {engine!r} quantized engine (it has {torch.backends.quantized.supported_engines})"
        )
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


class QuantizedModel(nn.Module):
    """An int8 model: float32 inputs in, float32 outputs out (the stubs quantize and dequantize inside), with the
    attributes people read from zoo models (``pretrained_cfg``, ``num_classes``, ...). CPU only, inference only.
    ``engine`` is the quantized engine its weights were packed for, which it runs under."""

    dtype = torch.qint8
    precision = "int8"
    # what ``quantize`` measured: the share of the calibration images (``calibration_agreement_images`` of them) on
    # which the int8 model's top-1 class is the float model's; None where it was not measured (loaded int8 weights,
    # a model whose output is not a batch of logits)
    calibration_agreement: float | None = None
    calibration_agreement_images: int = 0

    # oneDNN's int8 convolutions (the x86 engine's choice on CPUs with AMX or VNNI) pack their weights for the input
    # shape of their first call and reorder them on every call of another shape, which is slower (docs/design.md);
    # so each input shape gets a copy of the graph packed for it, the most recent few kept
    SHAPES_KEPT = 4

    def __init__(self, model: fx.GraphModule, source: nn.Module, engine: str = BACKEND) -> None:
        super().__init__()
        self.model = model
        self.engine = engine
        self._graphs: OrderedDict[tuple[int, ...], fx.GraphModule] = OrderedDict()
        keep_model_attributes(self, source)

    def _graph_for(self, shape: tuple[int, ...]) -> fx.GraphModule:
        if self.engine == "fbgemm":  # fbgemm's packing does not depend on the input shape
            return self.model
        if shape not in self._graphs:
            with quantized_engine(self.engine):
                self._graphs[shape] = self.model if not self._graphs else copy.deepcopy(self.model)
            if len(self._graphs) > self.SHAPES_KEPT:  # the least recently used copy goes (``model`` itself stays)
                oldest = next(shape for shape, graph in self._graphs.items() if graph is not self.model)
                del self._graphs[oldest]
        self._graphs.move_to_end(shape)
        return self._graphs[shape]

    def forward(self, x: torch.Tensor) -> Any:
        if x.device.type != "cpu":
            raise ValueError(f"int8 models run on the CPU only; the input is on {x.device}")
        x = x.float().contiguous(memory_format=torch.channels_last)
        graph = self._graph_for(tuple(x.shape))
        with quantized_engine(self.engine):
            return graph(x)

    def repack(self, engine: str) -> "QuantizedModel":
        """Pack the int8 weights for another quantized engine, in place: ``"x86"`` (fbgemm or oneDNN per layer, AMX
        where the CPU has it) is the fastest on x86 CPUs; ``"fbgemm"`` gives torchvision's int8 logits bit for bit.
        The rounding of the requantizations differs slightly between engines."""
        state = self.model.state_dict()
        with quantized_engine(engine):
            self.model.load_state_dict(state, strict=True)
        self.engine = engine
        self._graphs.clear()
        return self

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The quantized graph's state dict, keyed as the float model's modules (torchvision's int8 layout)."""
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._graphs.clear()
        with quantized_engine(self.engine):
            return self.model.load_state_dict(state_dict, strict=strict, assign=assign)


def _fuse_conv_relu(model: nn.Module) -> None:
    """BatchNorm is folded already; a ConvNormAct with ReLU becomes one fused ``ConvReLU2d`` at ``.conv``, the layout
    torchvision's fused checkpoints have (``conv`` holds the fused module, ``bn`` and ``act`` are identities)."""
    for module in model.modules():
        if isinstance(module, ConvNormAct) and isinstance(module.act, nn.ReLU) and isinstance(module.bn, nn.Identity):
            module.conv = intrinsic.ConvReLU2d(module.conv, nn.ReLU())
            module.act = nn.Identity()


class _FusedLeafTracer(fx.Tracer):
    """torch.fx's tracer, keeping fused modules (``ConvReLU2d``, an ``nn.Sequential``) whole, as eager mode swaps
    them for their quantized versions."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, intrinsic._FusedModule) or super().is_leaf_module(module, qualified_name)


def _owner(node: fx.Node) -> str:
    """The qualified name of the module whose forward made ``node`` ("" for the model's own forward)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = next(reversed(stack.values()))
    return path[0] if isinstance(path, tuple) else str(path)


def _add_module(graph: fx.GraphModule, owner: str, taken: dict[str, int], kind: str, module: nn.Module) -> str:
    """Register ``module`` in ``owner`` named ``kind`` (``concat``, ``add``, ``scale``, ``requant``; ``_1``, ``_2``,
    ... for the second and later of a module, in the order the forward runs them) and return its qualified name."""
    count = taken.get(f"{owner}/{kind}", 0)
    taken[f"{owner}/{kind}"] = count + 1
    name = kind if count == 0 else f"{kind}_{count}"
    (graph.get_submodule(owner) if owner else graph).add_module(name, module)
    return f"{owner}.{name}" if owner else name


def calibration_images(batch: Any) -> Any:
    """The images of a calibration batch: the batch itself, or the first item of an ``(images, targets)`` pair."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _is_tensor_node(value: Any) -> bool:
    return isinstance(value, fx.Node)


# ops with no kernel for quantized CPU tensors in torch: they run in float between a dequantize and a new quantize
_FLOAT_FUNCTIONS = {torch.nn.functional.adaptive_max_pool2d, torch.adaptive_max_pool1d}
_FLOAT_MODULES = (nn.AdaptiveMaxPool2d, nn.LocalResponseNorm)


def _runs_in_float(graph: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in _FLOAT_FUNCTIONS
    return node.op == "call_module" and isinstance(graph.get_submodule(node.target), _FLOAT_MODULES)


def _wrap_in_float(graph: fx.GraphModule, node: fx.Node, taken: dict[str, int]) -> None:
    """Dequantize ``node``'s tensor input and quantize its output again (with an observer of its own)."""
    name = _add_module(graph, _owner(node), taken, "requant", ao_quantization.QuantStub())
    source = node.args[0]
    with graph.graph.inserting_before(node):
        node.replace_input_with(source, graph.graph.call_module("dequant", (source,)))
    with graph.graph.inserting_after(node):
        requantized = graph.graph.call_module(name, (node,))
    node.replace_all_uses_with(requantized, delete_user_cb=lambda user: user is not requantized)


def prepare_quantization(model: nn.Module, qconfig: Any = None) -> fx.GraphModule:
    """A traced eval-mode copy of ``model`` ready for ``torch.ao.quantization.prepare``: BatchNorm folded, ReLUs fused
    into their convolutions, stubs and ``FloatFunctional`` modules in place, ``qconfig`` set (default: x86's)."""
    model = fold_batchnorm(copy.deepcopy(model).eval())
    _fuse_conv_relu(model)
    graph = fx.GraphModule(model, _FusedLeafTracer().trace(model), type(model).__name__)
    taken: dict[str, int] = {}
    nodes = list(graph.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    graph.add_module("quant", ao_quantization.QuantStub())
    graph.add_module("dequant", ao_quantization.DeQuantStub())
    for placeholder in placeholders:
        with graph.graph.inserting_after(placeholder):
            quantized = graph.graph.call_module("quant", (placeholder,))
        for user in list(placeholder.users):
            # the input checks read the float input; everything else gets the quantized one
            if user is not quantized and not (user.op == "call_function" and user.target is check_image_input):
                user.replace_input_with(placeholder, quantized)
    for node in nodes:
        if _runs_in_float(graph, node):
            _wrap_in_float(graph, node, taken)
            continue
        if node.op != "call_function":
            continue
        replacement: tuple[str, str, tuple] | None = None
        if node.target is torch.cat:
            tensors = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            replacement = ("concat", "cat", (tensors, dim))
        elif node.target in (operator.add, torch.add) and all(_is_tensor_node(a) for a in node.args[:2]):
            replacement = ("add", "add", tuple(node.args[:2]))
        elif node.target in (operator.mul, torch.mul) and len(node.args) == 2:
            tensor, factor = node.args if _is_tensor_node(node.args[0]) else node.args[::-1]
            if isinstance(factor, (int, float)) and _is_tensor_node(tensor):
                replacement = ("scale", "mul_scalar", (tensor, float(factor)))
        if replacement is None:
            continue
        kind, method, args = replacement
        name = _add_module(graph, _owner(node), taken, kind, FloatFunctional())
        with graph.graph.inserting_before(node):
            functional = graph.graph.get_attr(name)
            new = graph.graph.call_method(method, (functional, *args))
            if method == "mul_scalar":
                # torch's mul_scalar does not observe its output (the int8 op derives its scale from the input's),
                # yet convert reads the module's observer all the same: it warned "must run observer before calling
                # calculate_qparams" and stored a made-up scale. Observed here; an identity before prepare and after
                # convert, and the int8 op still uses its own scale
                graph.graph.call_module(f"{name}.activation_post_process", (new,))
        node.replace_all_uses_with(new)
        graph.graph.erase_node(node)
    output = next(n for n in graph.graph.nodes if n.op == "output")

    def dequantize(value: Any) -> Any:
        if isinstance(value, fx.Node):
            with graph.graph.inserting_before(output):
                return graph.graph.call_module("dequant", (value,))
        if isinstance(value, (tuple, list)):
            return type(value)(dequantize(v) for v in value)
        return value

    output.args = (dequantize(output.args[0]),)
    graph.graph.lint()
    graph.recompile()
    graph.qconfig = qconfig if qconfig is not None else default_qconfig()
    return graph


def default_qconfig() -> Any:
    """torch's x86 qconfig (histogram observer for activations, per-channel min-max for weights), with the full
    8-bit activation range where the CPU has VNNI or AMX-INT8. torch's default keeps 7 bits (``reduce_range``) so
    that fbgemm's AVX2 kernels cannot saturate; with VNNI that only costs accuracy (docs/performance.md)."""
    from ..precision import cpu_info

    flags = cpu_info().flags
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return ao_quantization.QConfig(
            activation=ao_quantization.HistogramObserver.with_args(reduce_range=False),
            weight=ao_quantization.default_per_channel_weight_observer,
        )
    return ao_quantization.get_default_qconfig(BACKEND)


def convert_prepared(
    graph: fx.GraphModule,
    calibration_batches: Iterable[torch.Tensor],
    engine: str = BACKEND,
    on_batch: Callable[[torch.Tensor, Any], None] | None = None,
) -> fx.GraphModule:
    """Observe ``calibration_batches`` (float input batches) with ``graph`` prepared, then convert it to int8.
    ``on_batch(images, output)`` sees each batch and the prepared graph's output for it (the float model's)."""
    with quantized_engine(engine):
        ao_quantization.prepare(graph, inplace=True)
        seen = 0
        with torch.no_grad():
            for batch in calibration_batches:
                batch = calibration_images(batch)
                if not torch.is_tensor(batch) or batch.dim() != 4:
                    raise ValueError(
                        "calibration batches are image tensors (batch, channels, height, width), or (images, targets) "
                        f"pairs; got {type(batch).__name__}"
                    )
                output = graph(batch.float().contiguous(memory_format=torch.channels_last))
                if on_batch is not None:
                    on_batch(batch, output)
                seen += 1
        if not seen:
            raise ValueError(
                "quantize needs at least one calibration batch (a few batches of real, preprocessed images)"
            )
        ao_quantization.convert(graph, inplace=True)
    return graph


def quantize(model: nn.Module, calibration_batches: Iterable[torch.Tensor], qconfig: Any = None) -> QuantizedModel:
    """An int8 copy of ``model`` (post-training static quantization): per-channel int8 weights, int8 activations
    whose ranges are observed on ``calibration_batches`` (input tensors, or ``(input, target)`` pairs, preprocessed as
    for the float model; a few hundred images are usually enough). The original model is left untouched.

    The result's ``calibration_agreement`` is the share of the calibration images (the first ``AGREEMENT_IMAGES``)
    on which the int8 model's top-1 class is the float model's; below ``AGREEMENT_WARNING`` an
    ``Int8AgreementWarning`` says what to do."""
    prepared = prepare_quantization(model, qconfig)
    first: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []  # calibration images and the float model's top-1 classes on them
    float_top1: list[torch.Tensor] = []

    def record(images: torch.Tensor, output: Any) -> None:
        if not first:
            first.append(images[:1])
        room = AGREEMENT_IMAGES - sum(len(batch) for batch in kept)
        if room > 0 and torch.is_tensor(output) and output.dim() == 2 and len(output) == len(images):  # logits
            kept.append(images[:room])
            float_top1.append(output[:room].argmax(1))

    try:
        converted = convert_prepared(prepared, calibration_batches, on_batch=record)
        quantized = QuantizedModel(converted, model).eval()
        with torch.no_grad():  # every op of the int8 graph has a kernel: said here, not at the first call
            if kept:
                agree = sum(int((quantized(x).argmax(1) == y).sum()) for x, y in zip(kept, float_top1, strict=True))
                quantized.calibration_agreement_images = sum(len(batch) for batch in kept)
                quantized.calibration_agreement = agree / quantized.calibration_agreement_images
            else:
                quantized(first[0])
    except NotImplementedError as error:  # an op without a quantized CPU kernel
        operator_name = re.search(r"'(aten::[\w.]+)'", str(error))
        raise ValueError(
            f"{type(model).__name__} cannot run in int8 here: "
            f"{operator_name.group(1) if operator_name else 'an operator'} has no quantized CPU kernel in torch "
            f"{torch.__version__}"
        ) from None
    name = type(model).__name__
    agreement, images = quantized.calibration_agreement, quantized.calibration_agreement_images
    if agreement is None:
        _logger.info("quantized %s to int8 (eager-mode static quantization, %s engine)", name, BACKEND)
        return quantized
    agreeing = round(agreement * images)
    _logger.info(
        "quantized %s to int8 (eager-mode static quantization, %s engine); it agrees with the float model on the top-1 "
        "class of %d of %d calibration images (%.1f%%)", name, BACKEND, agreeing, images, 100 * agreement,
    )  # fmt: skip
    if agreement < AGREEMENT_WARNING:
        warnings.warn(
            f"int8 {name} agrees with the float model on the top-1 class of only {agreeing} of {images} calibration "
            f"images ({agreement:.0%}, below {AGREEMENT_WARNING:.0%}): calibrate with more calibration batches of "
            "real, preprocessed images (a few hundred images), use torch's HistogramObserver for the activations if "
            "the qconfig given has another observer (the default qconfig uses it), or keep this model in float "
            "(optimize_for_inference with a float dtype)",
            Int8AgreementWarning,
            stacklevel=2,
        )
    return quantized


def rename_int8_keys(state_dict: Mapping[str, Any], key_map: Mapping[str, str | None] | None) -> OrderedDict:
    """An int8 state dict saved by another library under the zoo's names, its module versions kept. ``key_map``
    (an int8 tag's ``pretrained_cfg["quantized_keys"]``, declared next to the tag in its model file) renames module
    names one dotted component at a time; a component mapped to None is a module the int8 graph leaves out (an
    auxiliary head, which eval mode never runs), whose tensors are dropped. ``quantize`` names its own
    concatenation modules ``concat``, ``concat_1``, ... in the order the forward runs them."""
    key_map = dict(key_map or {})

    def rename(module_path: list[str]) -> list[str] | None:
        if any(key_map.get(part, part) is None for part in module_path):
            return None
        return [key_map.get(part, part) for part in module_path]

    mapped = OrderedDict()
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        renamed = rename(path)
        if renamed is not None:
            mapped[".".join([*renamed, leaf])] = value
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        kept = OrderedDict()
        for key, value in metadata.items():
            renamed = rename(key.split(".")) if key else []
            if renamed is not None:
                kept[".".join(renamed)] = value
        mapped._metadata = kept  # type: ignore[attr-defined]
    return mapped


def load_quantized(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    engine: str,
    source: str = "",
    key_map: Mapping[str, str | None] | None = None,
) -> QuantizedModel:
    """``model``'s structure quantized as torchvision's eager post-training quantization does (per-channel weights,
    min-max observers), then the int8 ``state_dict`` loaded into it strictly, packed for ``engine``. Its keys are
    renamed by ``key_map`` (default: ``model.pretrained_cfg["quantized_keys"]``, the int8 tag's; see
    ``rename_int8_keys``)."""
    from ..checkpoint import CheckpointMismatchError

    qconfig = ao_quantization.QConfig(
        activation=ao_quantization.default_observer, weight=ao_quantization.default_per_channel_weight_observer
    )
    prepared = prepare_quantization(model, qconfig)
    _, height, width = model.pretrained_cfg["input_size"]
    # the observers need one pass before convert; the loaded state dict then replaces every scale they chose
    graph = convert_prepared(prepared, [torch.zeros(1, model.in_chans, height, width)], engine)
    if key_map is None:
        key_map = (getattr(model, "pretrained_cfg", None) or {}).get("quantized_keys")
    mapped = rename_int8_keys(state_dict, key_map)
    expected = set(graph.state_dict())
    missing, unexpected = sorted(expected - set(mapped)), sorted(set(mapped) - expected)
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"{source or 'the int8 checkpoint'} does not fit {type(model).__name__}'s int8 graph: missing "
            f"{missing[:8]}, unexpected {unexpected[:8]}"
        )
    with quantized_engine(engine):
        graph.load_state_dict(mapped, strict=True)
    return QuantizedModel(graph, model, engine).eval()
