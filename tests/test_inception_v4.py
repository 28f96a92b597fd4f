"""Inception-v4 is interchangeable with timm's: same keys, same parameters, same logits, timm's Hub weights load."""

import pytest
import timm
import torch
from safetensors.torch import save

import inceptionzoo
from conftest import realistic_batchnorm, relative_error
from hub_server import HubServer
from inceptionzoo.complexity import count_macs, count_parameters

pytestmark = pytest.mark.lowest  # equal to the lowest supported timm too


@pytest.fixture(scope="module")
def timm_v4():
    torch.manual_seed(0)
    return realistic_batchnorm(timm.create_model("inception_v4"), size=128, batch=2)


def test_keys_parameters_and_cost_are_timms_and_the_papers():
    ours = inceptionzoo.create_model("inception_v4")
    assert list(ours.state_dict()) == list(timm.create_model("inception_v4").state_dict())
    assert count_parameters(ours) == 42_679_816  # timm's 42.68M
    assert round(count_macs(ours) / 1e9, 1) == 12.3  # timm's 12.3 GMACs at 299x299
    assert [info["num_chs"] for info in ours.feature_info] == [64, 160, 384, 1024, 1536]
    assert ours.get_classifier() is ours.last_linear and ours.pretrained_cfg["classifier"] == "last_linear"


def test_logits_and_features_equal_timm(timm_v4):
    ours = inceptionzoo.create_model("inception_v4").eval()
    ours.load_state_dict(timm_v4.state_dict(), strict=True)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert relative_error(ours(x), timm_v4(x)) <= 1e-5
        if not hasattr(timm_v4, "forward_intermediates"):  # timm before 1.0.1x: its logits are the comparison
            return
        for mine, theirs in zip(ours.forward_intermediates(x)[1], timm_v4.forward_intermediates(x)[1], strict=True):
            assert relative_error(mine, theirs) <= 1e-5


def test_timms_hub_weights_load_then_work_offline(timm_v4, tmp_path, monkeypatch):
    server = HubServer()
    weights = {k: v.contiguous() for k, v in timm_v4.state_dict().items()}
    server.add_repo("timm/inception_v4.tf_in1k", {"model.safetensors": save(weights)})
    server.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        model = inceptionzoo.create_model("inception_v4.tf_in1k", pretrained=True, num_classes=10)
        assert model.last_linear.out_features == 10
        assert torch.equal(model.features[21].branch0.conv.weight, weights["features.21.branch0.conv.weight"])
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        again = inceptionzoo.create_model("inception_v4", pretrained=True)  # the default tag, from the cache
        assert torch.equal(again.last_linear.weight, weights["last_linear.weight"])
    finally:
        server.stop()
