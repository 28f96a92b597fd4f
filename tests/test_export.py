"""Every registered model scripts, traces, exports and compiles, with outputs equal to eager mode."""

import inspect

import pytest
import torch

import inceptionzoo
from conftest import DISTINCT_NETWORKS, make_input, realistic_batchnorm, shared_model

pytestmark = pytest.mark.slow  # TorchScript, fx, torch.export, compile and ONNX: minutes, not seconds


def model_and_input(name: str):
    model = shared_model(name)
    return model, make_input(model, batch=1, extra=5)


def assert_same(out, reference, rtol=1e-5):
    assert out.shape == reference.shape
    assert (out - reference).abs().max() <= rtol * reference.abs().max()


@pytest.mark.lowest
@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_torchscript(name):
    model, x = model_and_input(name)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        assert_same(scripted(x), model(x))
    if "aux_logits" in inspect.signature(type(model).__init__).parameters:
        aux = inceptionzoo.create_model(name, aux_logits=True).eval()
        scripted_aux = torch.jit.script(aux)
        xa = make_input(aux, batch=1)
        with torch.no_grad():
            out, ref = scripted_aux(xa), aux(xa)
        assert len(out) == len(ref)
        for scripted_part, eager_part in zip(out, ref, strict=True):
            assert_same(scripted_part, eager_part)


@pytest.mark.lowest
@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_fx_trace_keeps_input_checks(name):
    model, x = model_and_input(name)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert_same(traced(x), model(x))
    with pytest.raises(ValueError, match="pixels"):
        traced(x[:, :, :-6, :-6])


@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_torch_export(name):
    model, x = model_and_input(name)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert_same(exported.module()(x), model(x))


@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_compile_fullgraph_has_no_graph_breaks(name):
    model, x = model_and_input(name)
    torch._dynamo.reset()
    # fullgraph=True raises on any graph break; the eager backend checks the capture without a C++ build
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert_same(compiled(x), model(x))


@pytest.mark.skipif(
    "dynamo" not in inspect.signature(torch.onnx.export).parameters,
    reason=f"torch.onnx.export(dynamo=True) is not in torch {torch.__version__}",
)
@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_the_onnxruntime_engine_gives_eager_outputs_at_any_batch(name):
    pytest.importorskip("onnxruntime")
    from inceptionzoo.deploy.onnxruntime import OnnxRuntimeModel

    model, x = model_and_input(name)
    engine = OnnxRuntimeModel.from_model(model, input_size=tuple(x.shape[1:]))
    assert engine.precision == "float32" and engine.pretrained_cfg == model.pretrained_cfg
    batch = torch.cat([x, -x, 2 * x])  # the exported batch dimension is dynamic
    with torch.no_grad():
        assert_same(engine(x), model(x), rtol=1e-4)
        assert_same(engine(batch), model(batch), rtol=1e-4)
    with pytest.raises(ValueError, match="exported for input of shape Nx"):
        engine(x[:, :, 1:, 1:])


def test_onnx_int8_and_file_round_trip(tmp_path):
    pytest.importorskip("onnxruntime")
    from inceptionzoo.deploy.onnxruntime import OnnxRuntimeModel

    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_cifar"), size=32, steps=2, batch=4)
    calibration = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    fp32 = inceptionzoo.optimize_for_inference(model, engine="onnxruntime")  # the model's own input size
    assert fp32.precision == "float32" and fp32.input_shape[1:] == (3, 32, 32)
    path = inceptionzoo.export_onnx(model, tmp_path / "int8.onnx", int8=True, calibration_batches=calibration)
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]
    engine = OnnxRuntimeModel(path, source=model)
    assert engine.precision == "int8" and engine.num_classes == model.num_classes
    x = calibration[0]
    with torch.no_grad():
        assert ((engine(x) - model(x)).abs().max() / model(x).abs().max()).item() < 0.25


def test_onnx_int8_quantizes_batchnorm_scales_per_channel_without_warnings(tmp_path, caplog):
    # inception_fast_cifar's BatchNorm after each pooling has no convolution to fold into; ONNX Runtime's quantizer
    # took channel axis 1 for its one-dimensional scale, logged "Axis 1 is out-of-range" and fell back to per-tensor
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import numpy_helper

    from inceptionzoo.deploy.onnxruntime import OnnxRuntimeModel

    model = realistic_batchnorm(inceptionzoo.create_model("inception_fast_cifar"), size=32, steps=2, batch=4)
    calibration = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    with caplog.at_level("WARNING"):
        path = inceptionzoo.export_onnx(model, tmp_path / "int8.onnx", int8=True, calibration_batches=calibration)
    assert "out-of-range" not in caplog.text
    graph = onnx.load(str(path)).graph
    scales = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name.endswith("bn.weight_scale")}
    assert scales and all(scale.ndim == 1 and scale.size > 1 for scale in scales.values())  # one per channel
    engine = OnnxRuntimeModel(path, source=model)
    x = calibration[0]
    with torch.no_grad():
        assert ((engine(x) - model(x)).abs().max() / model(x).abs().max()).item() < 0.25


def test_a_missing_onnx_extra_is_named(monkeypatch, tmp_path):
    import sys

    from inceptionzoo.deploy.onnxruntime import export_onnx

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what an install without the extra has
    with pytest.raises(ImportError, match=r"onnxscript.*inceptionzoo\[onnx\]"):
        export_onnx(inceptionzoo.create_model("inception_v1_cifar"), tmp_path / "m.onnx")
