"""GoogLeNet in its three forms and BN-Inception: torchvision equivalence and the papers' structure."""

import pytest
import torch
import torchvision
from torch.torch_version import TorchVersion

import inceptionzoo
from conftest import realistic_batchnorm, relative_error
from inceptionzoo.complexity import count_parameters

pytestmark = pytest.mark.lowest  # equal to the lowest supported torchvision too


def test_inception_v1_tv_is_torchvision_googlenet():
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v1_tv", aux_logits=True), size=224)
    theirs = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=False)
    assert list(model.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(model.state_dict(), strict=True)
    theirs.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert relative_error(model(x).logits, theirs(x)) <= 1e-5
    # in training mode the aux heads agree too (same dropout draws given the same seed)
    model.train(), theirs.train()
    torch.manual_seed(3)
    ours = model(x)
    torch.manual_seed(3)
    reference = theirs(x)
    if TorchVersion(torchvision.__version__) < "0.21":  # older torchvision put the two aux outputs the other way round
        reference = (reference[0], reference[2], reference[1])
    for mine, other in zip(ours, reference, strict=True):
        assert relative_error(mine, other) <= 1e-5
    assert count_parameters(inceptionzoo.create_model("inception_v1_tv")) == 6_624_904
    assert count_parameters(model) == 13_004_888
    assert tuple(inceptionzoo.create_model("inception_v1_tv").min_input_size) == (15, 15)  # torchvision's min_size


def test_inception_v1_follows_the_2014_paper():
    model = inceptionzoo.create_model("inception_v1")
    assert isinstance(model.lrn1, torch.nn.LocalResponseNorm) and isinstance(model.lrn2, torch.nn.LocalResponseNorm)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.conv1.conv.bias is not None
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert model.head_drop.p == 0.4
    assert count_parameters(model) == 6_998_552  # Table 1 sums to about 6.8M (see docs/models.md)
    with_aux = inceptionzoo.create_model("inception_v1", aux_logits=True)
    assert with_aux.aux1.dropout.p == 0.7 and with_aux.aux1.fc1.out_features == 1024
    assert with_aux.aux1.conv.conv.out_channels == 128


def test_inception_v1_bn_only_swaps_lrn_for_batchnorm():
    paper = inceptionzoo.create_model("inception_v1")
    bn = inceptionzoo.create_model("inception_v1_bn")
    assert bn.lrn1 is None and bn.lrn2 is None
    paper_convs = {k[: -len(".conv.weight")] for k in paper.state_dict() if k.endswith(".conv.weight")}
    bn_convs = {k[: -len(".conv.weight")] for k in bn.state_dict() if k.endswith(".conv.weight")}
    assert paper_convs == bn_convs
    assert all(f"{name}.bn.running_mean" in bn.state_dict() for name in bn_convs)


def test_bn_inception_structure():
    model = inceptionzoo.create_model("bn_inception").eval()
    assert model.maxpool3 is None and model.maxpool4 is None
    assert model.inception3c.branch1 is None and model.inception4e.branch1 is None
    assert len(model.inception3a.branch3) == 3  # a 5x5 became two 3x3
    assert isinstance(model.inception3a.branch4[0], torch.nn.AvgPool2d)
    assert model.head_drop.p == 0.0
    widths = [getattr(model, n).out_chs for n in model.layer_names if n.startswith("inception")]
    assert widths == [256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024]  # figure 5 of the BN paper
    with torch.no_grad():
        maps = model.forward_intermediates(torch.randn(1, 3, 224, 224), intermediates_only=True)
    assert [m.shape[-1] for m in maps] == [112, 56, 28, 14, 7]


@pytest.mark.parametrize("size", [224, 225, 227, 239])
def test_bn_inception_stride2_modules_fit_odd_sizes(size):
    model = inceptionzoo.create_model("bn_inception").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)


def test_invalid_config_is_explained():
    from inceptionzoo.models.inception_v1 import GoogLeNetConfig, InceptionModule

    with pytest.raises(ValueError, match="norm must be"):
        GoogLeNetConfig(norm="layernorm")
    with pytest.raises(ValueError, match="branch3 must be"):
        InceptionModule(8, 4, 4, 4, 4, 4, 4, branch3="7x7")
    with pytest.raises(ValueError, match="stem_stride must be 1 or more"):
        GoogLeNetConfig(stem_stride=0)
    # the CIFAR stem has no 7x7 stride or first pool to change: asking to is an error, not a silently ignored field
    with pytest.raises(ValueError, match="'cifar' stem has neither"):
        inceptionzoo.create_model("inception_v1_cifar", stem_stride=1)
    with pytest.raises(ValueError, match="'cifar' stem has neither"):
        inceptionzoo.create_model("inception_v3_cifar", stem_pool=False)


# Section 9 of arXiv 1512.00567 for 32x32 inputs: stride 1 and no pool after the first layer, each stem kept
CIFAR_STEM = {"stem_stride": 1, "stem_pool": False, "width_multiplier": 0.25}


def test_stem_stride_and_pool_default_to_the_imagenet_stem():
    default, explicit = (inceptionzoo.create_model("inception_v1_bn", **kw) for kw in ({}, {"stem_stride": 2}))
    assert default.conv1.conv.stride == (2, 2) and default.maxpool1 is not None
    assert [i["reduction"] for i in default.feature_info] == [2, 4, 8, 16, 32]
    assert str(default) == str(explicit)
    model = inceptionzoo.create_model("inception_v1_bn", **CIFAR_STEM)
    assert model.conv1.conv.kernel_size == (7, 7) and model.conv1.conv.stride == (1, 1)  # the 7x7 stays a 7x7
    assert model.maxpool1 is None and model.config.stem_stride == 1 and not model.config.stem_pool


@pytest.mark.parametrize("name", ["inception_v1_bn", "bn_inception"])
def test_stride_1_stem_without_pool_fits_32x32_images(name):
    model = inceptionzoo.create_model(name, num_classes=10, **CIFAR_STEM).eval()
    assert [i["reduction"] for i in model.feature_info] == [1, 1, 2, 4, 8]
    extractor = inceptionzoo.create_model(name, features_only=True, **CIFAR_STEM).eval()
    with torch.no_grad():
        maps = extractor(torch.randn(1, 3, 32, 32))
    assert [tuple(m.shape[-2:]) for m in maps] == [(32 // r, 32 // r) for r in extractor.feature_info.reduction()]
    # the stated minimum is exact: it runs, and one pixel less is the library's error naming it
    for net in (model, inceptionzoo.create_model(name, num_classes=10, aux_logits=True, **CIFAR_STEM).train()):
        height, width = net.min_input_size
        assert net.pretrained_cfg["min_input_size"] == (3, height, width)
        with torch.no_grad():
            net(torch.randn(2, 3, height, width))
            with pytest.raises(ValueError, match=f"minimum of {height}x{width} pixels"):
                net(torch.randn(2, 3, height, width - 1))
    with_aux = inceptionzoo.create_model(name, num_classes=10, aux_logits=True, **CIFAR_STEM).train()
    assert with_aux.min_input_size <= (32, 32)
    outputs = with_aux(torch.randn(2, 3, 32, 32))  # both aux heads run at CIFAR size
    assert [tuple(o.shape) for o in outputs] == [(2, 10)] * 3
