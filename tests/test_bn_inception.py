"""bn_inception_caffe is pretrainedmodels' BNInception (Xiong's Caffe model): its published weights load through a
key map that folds the BGR order, the 0-255 range and the convolution biases away, and give its logits."""

import hashlib
import importlib.util
import io
from pathlib import Path

import pytest
import torch

import inceptionzoo
from conftest import relative_error
from inceptionzoo.models.inception_v1 import caffe_bn_inception_filter

CAFFE_MEAN_BGR = torch.tensor([104.0, 117.0, 128.0]).view(1, 3, 1, 1)


def _pretrainedmodels_bninception() -> type[torch.nn.Module]:
    """pretrainedmodels' own BNInception class, read from its file: the package's __init__ imports its dataset
    helpers, which need ``six``, a dependency it does not declare."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None:
        pytest.skip("pretrainedmodels is not installed (a test dependency)")
    path = Path(spec.submodule_search_locations[0]) / "models" / "bninception.py"
    module_spec = importlib.util.spec_from_file_location("pretrainedmodels_bninception", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.BNInception


@pytest.fixture(scope="module")
def caffe_model():
    """pretrainedmodels' BNInception with random weights, biased convolutions and BatchNorm statistics from
    Caffe-range input (BGR pixels 0-255 minus the mean pixel)."""
    torch.manual_seed(0)
    model = _pretrainedmodels_bninception()(num_classes=1000)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.bias, 0.0, 0.5)
        elif isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(255 * torch.rand(4, 3, 224, 224) - CAFFE_MEAN_BGR)
    return model.eval()


def _published_file(model: torch.nn.Module) -> bytes:
    """The state dict as the published file has it: BatchNorm tensors of shape (1, C), no num_batches_tracked,
    torch's legacy (non-zip) format at pickle protocol 2, as the Python 2 port wrote it."""
    state_dict = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state_dict[key] = value.reshape(1, -1) if key.rpartition(".")[0].endswith("_bn") else value
    buffer = io.BytesIO()
    torch.save(state_dict, buffer, _use_new_zipfile_serialization=False, pickle_protocol=2)
    return buffer.getvalue()


def _pixels_to_caffe_input(pixels: torch.Tensor) -> torch.Tensor:
    return 255 * pixels.flip(1) - CAFFE_MEAN_BGR


def test_the_published_weights_give_pretrainedmodels_logits_then_load_offline(caffe_model, hub, monkeypatch):
    payload = _published_file(caffe_model)
    file_name = f"bn_inception-{hashlib.sha256(payload).hexdigest()[:9]}.pth"
    hub.files[file_name] = payload
    overlay = {"url": f"{hub.url}/files/{file_name}"}
    name = "bn_inception_caffe.caffe_in1k"
    ours = inceptionzoo.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    cfg = ours.pretrained_cfg
    assert cfg["std"] == (1.0, 1.0, 1.0) and cfg["input_size"] == (3, 224, 224)
    pixels = torch.rand(2, 3, 224, 224)  # RGB in 0-1, what ToTensor gives
    x = (pixels - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = caffe_model(_pixels_to_caffe_input(pixels))
        assert relative_error(ours(x), expected) <= 1e-5

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests = len(hub.requests)
    tuned = inceptionzoo.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=10).eval()
    assert len(hub.requests) == requests and tuned.num_classes == 10
    with torch.no_grad():
        assert relative_error(tuned.forward_features(x), ours.forward_features(x)) <= 1e-6
    cfg = inceptionzoo.create_model(name).pretrained_cfg
    assert cfg["url"].endswith("/bn_inception-52deb4733.pth") and (cfg["top1"], cfg["top5"]) == (73.524, 91.562)


def test_the_key_map_covers_every_tensor_and_the_folds_are_exact(caffe_model):
    model = inceptionzoo.create_model("bn_inception_caffe").eval()
    converted = caffe_bn_inception_filter(caffe_model.state_dict(), model)
    assert model.load_state_dict(converted, strict=True)  # every key of both has its counterpart
    assert caffe_bn_inception_filter(converted, model) is converted  # our own layout passes through
    pixels = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        expected = caffe_model.conv1_7x7_s2_bn(caffe_model.conv1_7x7_s2(_pixels_to_caffe_input(pixels)))
        mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
        assert relative_error(model.conv1.bn(model.conv1.conv(pixels - mean)), expected) <= 1e-5


def test_where_bn_inception_and_the_caffe_network_differ(caffe_model):
    """The paper's bn_inception centres the stride-2 pools of 3c and 4e (padding 1) and uses eps 1e-3; the Caffe
    network pools from the corner in ceil mode, with eps 1e-5. Same keys; other outputs."""
    paper = inceptionzoo.create_model("bn_inception").eval()
    caffe = inceptionzoo.create_model("bn_inception_caffe").eval()
    assert {k: v.shape for k, v in paper.state_dict().items()} == {k: v.shape for k, v in caffe.state_dict().items()}
    assert (paper.conv1.bn.eps, caffe.conv1.bn.eps) == (1e-3, 1e-5)
    converted = caffe_bn_inception_filter(caffe_model.state_dict(), caffe)
    caffe.load_state_dict(converted)
    paper = inceptionzoo.create_model("bn_inception", norm_eps=1e-5).eval()
    paper.load_state_dict(converted)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert relative_error(paper(x), caffe(x)) > 1e-4


@pytest.mark.parametrize("size", [14, 15, 28, 29])
def test_the_caffe_pool_is_caffes_on_even_sizes_and_fits_odd_ones(size):
    module = inceptionzoo.create_model("bn_inception_caffe").inception3c.eval()
    x = torch.rand(1, module.branch2[0].conv.in_channels, size, size)
    with torch.no_grad():
        out = module(x)
        pool = module.branch4(x)
    assert out.shape[-1] == module.branch2(x).shape[-1] == pool.shape[-1] == (size + 1) // 2
    assert module.output_size(size, 0) == (size + 1) // 2
    if size % 2 == 0:
        assert torch.equal(pool, torch.nn.functional.max_pool2d(x, 3, stride=2, ceil_mode=True))
