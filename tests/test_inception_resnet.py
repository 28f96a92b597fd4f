"""Inception-ResNet-v2 is interchangeable with timm's (keys, parameters, logits, Hub weights, the retired name);
Inception-ResNet-v1 has the paper's widths; the residual scale is a builder argument."""

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
def timm_v2():
    torch.manual_seed(0)
    return realistic_batchnorm(timm.create_model("inception_resnet_v2"), size=128, batch=2)


def test_keys_parameters_and_cost_are_timms():
    ours = inceptionzoo.create_model("inception_resnet_v2")
    assert list(ours.state_dict()) == list(timm.create_model("inception_resnet_v2").state_dict())
    assert count_parameters(ours) == 55_843_464  # timm's 55.84M
    assert round(count_macs(ours) / 1e9, 1) == 13.2  # timm's 13.2 GMACs at 299x299
    assert [info["num_chs"] for info in ours.feature_info] == [64, 192, 320, 1088, 1536]
    assert ours.get_classifier() is ours.classif and ours.pretrained_cfg["classifier"] == "classif"


def test_logits_and_features_equal_timm(timm_v2):
    ours = inceptionzoo.create_model("inception_resnet_v2").eval()
    ours.load_state_dict(timm_v2.state_dict(), strict=True)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert relative_error(ours(x), timm_v2(x)) <= 1e-5
        if not hasattr(timm_v2, "forward_intermediates"):  # timm before 1.0.1x: its logits are the comparison
            return
        for mine, theirs in zip(ours.forward_intermediates(x)[1], timm_v2.forward_intermediates(x)[1], strict=True):
            assert relative_error(mine, theirs) <= 1e-5


@pytest.mark.parametrize("tag", ["tf_in1k", "tf_ens_adv_in1k"])
def test_timms_hub_weights_load_then_work_offline(timm_v2, tag, tmp_path, monkeypatch):
    server = HubServer()
    weights = {k: v.contiguous() for k, v in timm_v2.state_dict().items()}
    server.add_repo(f"timm/inception_resnet_v2.{tag}", {"model.safetensors": save(weights)})
    server.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        model = inceptionzoo.create_model(f"inception_resnet_v2.{tag}", pretrained=True, num_classes=10)
        assert model.classif.out_features == 10
        assert torch.equal(model.repeat_1[7].branch1[1].conv.weight, weights["repeat_1.7.branch1.1.conv.weight"])
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        if tag == "tf_ens_adv_in1k":  # timm's retired name, with timm's warning, from the cache
            with pytest.warns(UserWarning, match="deprecated model name ens_adv_inception_resnet_v2"):
                again = inceptionzoo.create_model("ens_adv_inception_resnet_v2", pretrained=True)
        else:
            again = inceptionzoo.create_model("inception_resnet_v2", pretrained=True)  # the default tag
        assert torch.equal(again.classif.weight, weights["classif.weight"])
    finally:
        server.stop()


def test_the_residual_scale_is_a_builder_argument():
    default = inceptionzoo.create_model("inception_resnet_v2")
    assert [default.repeat[0].scale, default.repeat_1[0].scale, default.repeat_2[0].scale] == [0.17, 0.10, 0.20]
    assert default.block8.scale == 1.0 and isinstance(default.block8.act, torch.nn.Identity)  # TF-slim's last
    one = inceptionzoo.create_model("inception_resnet_v1", residual_scale=0.3)
    assert {block.scale for stage in (one.repeat, one.repeat_1, one.repeat_2) for block in stage} == {0.3}
    each = inceptionzoo.create_model("inception_resnet_v1", residual_scale=(0.1, 0.2, 0.3))
    assert (each.repeat[0].scale, each.repeat_1[0].scale, each.repeat_2[0].scale) == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match=r"residual_scale is a factor in \(0, 1\]"):
        inceptionzoo.create_model("inception_resnet_v1", residual_scale=1.5)
    # the scale is the residual branch's weight: scaling it moves the output, on the same weights
    x = torch.randn(1, 3, 96, 96)
    torch.manual_seed(0)
    small = inceptionzoo.create_model("inception_resnet_v1", residual_scale=0.1).eval()
    large = inceptionzoo.create_model("inception_resnet_v1", residual_scale=0.3).eval()
    large.load_state_dict(small.state_dict())
    with torch.no_grad():
        assert not torch.allclose(small(x), large(x))


def test_inception_resnet_v1_has_the_papers_widths():
    model = inceptionzoo.create_model("inception_resnet_v1")
    # figure 15: 5, 10 and 5 modules on the 35x35 (256), 17x17 (896) and 8x8 (1792) grids; figure 14's stem
    assert (len(model.repeat), len(model.repeat_1), len(model.repeat_2)) == (5, 10, 5)
    assert [info["num_chs"] for info in model.feature_info] == [64, 192, 256, 896, 1792]
    assert model.conv2d_4b.conv.stride == (2, 2) and model.mixed_5b is None and model.block8 is None
    assert model.repeat[0].conv2d.in_channels == 96  # figure 10: 32 + 32 + 32
    assert model.repeat_1[0].conv2d.in_channels == 256 and model.repeat_2[0].conv2d.in_channels == 384
    assert model.num_features == 1792 and model.pretrained_cfg.get("hf_hub_id") in (None, "")
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, 299, 299)).shape == (1, 1792, 8, 8)
