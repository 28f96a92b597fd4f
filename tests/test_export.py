"""Every registered model scripts, traces, exports and compiles, with outputs equal to eager mode."""

import inspect

import pytest
import torch

import inceptionzoo
from conftest import DISTINCT_NETWORKS, make_input, shared_model

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
def test_onnx_export_matches_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, x = model_and_input(name)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert_same(torch.from_numpy(out), model(x), rtol=1e-4)
