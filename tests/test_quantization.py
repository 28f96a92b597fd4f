"""int8: torchvision's published int8 checkpoints load strictly into the zoo's int8 graph and give torchvision's
logits exactly; ``quantize`` gives an int8 model of every distinct network that stays close to the float one; and
what cannot be done is said."""

import hashlib
import io
import logging
import warnings

import pytest
import torch
from torch.ao.nn import quantized as nnq

import inceptionzoo
from conftest import DISTINCT_NETWORKS, make_input, realistic_batchnorm, relative_error
from inceptionzoo.deploy.int8 import QuantizedModel, quantize, quantized_engine, rename_int8_keys

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

# (tag, torchvision's quantizable class, input size, torchvision's file name before its hash)
TORCHVISION_INT8 = [
    ("inception_v3.tv_int8_in1k", "inception.QuantizableInception3", 299, "inception_v3_google_fbgemm"),
    ("inception_v1_tv.tv_int8_in1k", "googlenet.QuantizableGoogLeNet", 224, "googlenet_fbgemm"),
]


def _torch_reads_quantized_tensors_safely() -> bool:
    buffer = io.BytesIO()
    torch.save({"q": torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.quint8)}, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except Exception:
        return False
    return True


SAFE_QTENSORS = _torch_reads_quantized_tensors_safely()


def _torchvision_int8(class_path: str, size: int) -> torch.nn.Module:
    """torchvision's quantizable model with random weights and realistic BatchNorm statistics, quantized the way its
    published int8 weights were made (``quantize_model``: fused, fbgemm, min-max observers, per-channel weights)."""
    import importlib

    from torchvision.models.quantization.utils import _replace_relu, quantize_model

    module_name, class_name = class_path.split(".")
    cls = getattr(importlib.import_module(f"torchvision.models.quantization.{module_name}"), class_name)
    model = cls(init_weights=False, transform_input=False, aux_logits=True)
    _replace_relu(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, size, size))
    with quantized_engine("fbgemm"):
        quantize_model(model.eval(), "fbgemm")
    return model


@pytest.mark.skipif(not SAFE_QTENSORS, reason=f"torch {torch.__version__} cannot load quantized tensors safely")
@pytest.mark.parametrize(("tag", "class_path", "size", "stem"), TORCHVISION_INT8)
def test_torchvisions_int8_weights_give_its_logits_then_load_offline(tag, class_path, size, stem, hub, monkeypatch):
    torchvision_model = _torchvision_int8(class_path, size)
    buffer = io.BytesIO()
    torch.save(torchvision_model.state_dict(), buffer)
    payload = buffer.getvalue()
    file_name = f"{stem}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    hub.files[file_name] = payload
    overlay = {"url": f"{hub.url}/files/{file_name}"}
    ours = inceptionzoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay)
    assert isinstance(ours, QuantizedModel) and ours.engine == "fbgemm" and ours.precision == "int8"
    assert ours.calibration_agreement is None  # loaded, not calibrated here
    # every tensor but the aux heads' (never run in eval mode), under the zoo's names, loaded strictly
    key_map = ours.pretrained_cfg["quantized_keys"]  # torchvision's module names, declared next to the tag
    assert set(ours.state_dict()) == set(rename_int8_keys(torchvision_model.state_dict(), key_map))
    x = torch.randn(2, 3, size, size)  # torchvision's transform_input is the zoo's mean / std of 0.5
    with torch.no_grad(), quantized_engine("fbgemm"):
        expected = torchvision_model(x)
    with torch.no_grad():
        assert torch.equal(ours(x), expected)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(hub.requests)
    again = inceptionzoo.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay)
    assert len(hub.requests) == requests
    with torch.no_grad():
        assert torch.equal(again(x), expected)
    cfg = inceptionzoo.create_model(tag).pretrained_cfg  # without weights: the float architecture with the tag's cfg
    assert cfg["quantized"] == "fbgemm" and cfg["url"].startswith("https://download.pytorch.org/models/quantized/")


def test_int8_weights_are_for_inference_and_say_where_to_fine_tune(hub):
    with pytest.raises(ValueError, match=r"int8 inference model.*inception_v3\.tv_in1k"):
        inceptionzoo.create_model("inception_v3.tv_int8_in1k", pretrained=True, num_classes=10)
    with pytest.raises(ValueError, match="feature maps"):
        inceptionzoo.create_model("inception_v3.tv_int8_in1k", pretrained=True, features_only=True)


def _unobserved(caught: list) -> list[str]:
    """torch's warning for an observer that saw nothing, whose module then gets a made-up scale and zero point."""
    return [str(w.message) for w in caught if "must run observer before calling calculate_qparams" in str(w.message)]


def test_quantizing_the_fast_cifar_network_observes_every_module():
    # its logits are scaled (x * 1/9): torch's FloatFunctional.mul_scalar does not observe its output, and convert
    # then asked the scale module's empty observer for a scale (a warning per scaled tensor)
    model = realistic_batchnorm(inceptionzoo.create_model("inception_fast_cifar"), size=32, steps=2, batch=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize(model, [torch.randn(4, 3, 32, 32) for _ in range(2)])
    assert not _unobserved(caught)


@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_quantize_gives_an_int8_model_close_to_the_float_one(name):
    model = inceptionzoo.create_model(name)
    height, width = model.min_input_size
    model = realistic_batchnorm(model, size=max(height, width, 64), steps=2, batch=2)
    calibration = [make_input(model, batch=2, extra=8) for _ in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = quantize(model, calibration)
    assert not _unobserved(caught)  # every observer saw the calibration batches
    assert isinstance(quantized, QuantizedModel) and quantized.num_classes == model.num_classes
    layers = list(quantized.modules())
    assert not any(type(m) in (torch.nn.Conv2d, torch.nn.Linear) for m in layers)  # every conv and linear is int8
    assert any(isinstance(m, nnq.Conv2d) for m in layers) and any(isinstance(m, nnq.Linear) for m in layers)
    x = calibration[0]
    with torch.no_grad():
        expected, got = model(x), quantized(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert relative_error(got, expected) < 0.25
    assert any(type(m) is torch.nn.Conv2d for m in model.modules())  # the original is untouched


def test_quantize_says_what_it_cannot_do():
    model = inceptionzoo.create_model("inception_v1_cifar").eval()
    with pytest.raises(ValueError, match="at least one calibration batch"):
        quantize(model, [])
    with pytest.raises(ValueError, match="image tensors"):
        quantize(model, [torch.randn(3, 32, 32)])
    silu = inceptionzoo.create_model("inception_v1_cifar", act_layer="silu").eval()
    minmax = torch.ao.quantization.QConfig(  # the default histogram observers take 15 s over SiLU's outputs
        activation=torch.ao.quantization.default_observer,
        weight=torch.ao.quantization.default_per_channel_weight_observer,
    )
    with pytest.raises(ValueError, match=r"cannot run in int8 here: aten::silu"):
        quantize(silu, [torch.randn(2, 3, 32, 32)], qconfig=minmax)
    quantized = quantize(model, ((torch.randn(2, 3, 32, 32), torch.tensor([0, 1])) for _ in range(2)))  # (x, y)
    with pytest.raises(ValueError, match="CPU only"):
        quantized(torch.randn(1, 3, 32, 32, device="meta"))


def test_quantize_measures_its_agreement_with_float_on_the_calibration_images(caplog, monkeypatch):
    from inceptionzoo.deploy import int8

    model = realistic_batchnorm(inceptionzoo.create_model("inception_fast_cifar"), size=32, steps=2, batch=4)
    calibration = [torch.randn(6, 3, 32, 32) for _ in range(2)]
    monkeypatch.setattr(int8, "AGREEMENT_WARNING", 0.0)
    with caplog.at_level(logging.INFO, logger="inceptionzoo.deploy.int8"), warnings.catch_warnings():
        warnings.simplefilter("error", int8.Int8AgreementWarning)  # at or above the threshold: no warning
        quantized = quantize(model, ((x, torch.zeros(6)) for x in calibration))  # a generator of (x, y) pairs
    assert quantized.calibration_agreement_images == 12
    with torch.no_grad():
        x = torch.cat(calibration)
        agree = (quantized(x).argmax(1) == model(x).argmax(1)).float().mean().item()
    assert 0.0 <= quantized.calibration_agreement <= 1.0
    assert abs(quantized.calibration_agreement - agree) <= 1 / 12 + 1e-6  # a near tie may round either way
    lines = [r.getMessage() for r in caplog.records if "agrees with" in r.getMessage()]
    assert len(lines) == 1 and "of 12 calibration images" in lines[0]

    monkeypatch.setattr(int8, "AGREEMENT_WARNING", 1.01)  # every result is below it
    with pytest.warns(int8.Int8AgreementWarning, match=r"agrees with the float model on the top-1 class of only"):
        low = quantize(model, calibration)
    assert low.calibration_agreement == quantized.calibration_agreement


def test_the_agreement_warning_says_what_to_do(monkeypatch):
    from inceptionzoo.deploy import int8

    monkeypatch.setattr(int8, "AGREEMENT_WARNING", 1.01)
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_cifar"), size=32, steps=2, batch=4)
    with pytest.warns(int8.Int8AgreementWarning) as caught:
        quantize(model, [torch.randn(4, 3, 32, 32)])
    message = next(str(w.message) for w in caught if w.category is int8.Int8AgreementWarning)
    assert "more calibration batches" in message and "HistogramObserver" in message and "float" in message


def test_int8_through_optimize_for_inference():
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_cifar"), size=32, steps=2, batch=4)
    fast = inceptionzoo.optimize_for_inference(model, dtype="int8", calibration_batches=[torch.randn(4, 3, 32, 32)])
    assert isinstance(fast, QuantizedModel) and fast.precision == "int8" and fast.precision_reason == "asked for int8"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert relative_error(fast(x), model(x)) < 0.25


def test_repacking_for_another_engine_keeps_the_function():
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_cifar"), size=32, steps=2, batch=4)
    calibration = [torch.randn(8, 3, 32, 32)]
    quantized = quantize(model, calibration)
    x = calibration[0]
    with torch.no_grad():
        before = quantized(x)
        repacked = quantized.repack("fbgemm")
        assert repacked is quantized and quantized.engine == "fbgemm"
        after = quantized(x)
    assert relative_error(after, before) < 0.05  # the same int8 tensors; only the kernels' rounding differs


def test_each_input_shape_gets_a_graph_packed_for_it_and_the_same_function():
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_cifar"), size=32, steps=2, batch=4)
    quantized = quantize(model, [torch.randn(8, 3, 32, 32)])
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        whole = quantized(x)
        for batch in (1, 2, 3, 4, 5, 6):  # more shapes than are kept
            assert torch.allclose(quantized(x[:batch]), whole[:batch], atol=1e-4 * whole.abs().max().item())
    if quantized.engine != "fbgemm":
        assert len(quantized._graphs) == QuantizedModel.SHAPES_KEPT
        assert any(graph is quantized.model for graph in quantized._graphs.values())


@pytest.mark.lowest
def test_int8_files_load_safely_or_say_why_not(tmp_path):
    from inceptionzoo.checkpoint import CheckpointError, load_quantized_state_dict

    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_cifar"), size=32, steps=2, batch=4)
    path = tmp_path / "int8.pth"
    torch.save(quantize(model, [torch.randn(4, 3, 32, 32)]).state_dict(), path)
    try:  # what this torch's safe loader can do, asked directly
        torch.load(path, weights_only=True)
        readable = True
    except Exception:
        readable = False
    if readable:
        state_dict = load_quantized_state_dict(path)
        assert hasattr(state_dict, "_metadata") and any(
            v.is_quantized for v in state_dict.values() if torch.is_tensor(v)
        )
    else:  # torch 2.3's weights_only unpickler has no quantized tensors
        with pytest.raises(CheckpointError, match="cannot read quantized tensors"):
            load_quantized_state_dict(path)
    not_int8 = tmp_path / "float.pth"
    torch.save(model.state_dict(), not_int8)
    with pytest.raises(CheckpointError, match="int8"):
        load_quantized_state_dict(not_int8)
