"""The papers' design choices are builder arguments; each is exercised here."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inceptionzoo
from inceptionzoo.complexity import count_macs, count_parameters


def conv_kernels(module: torch.nn.Module) -> set[tuple[int, int]]:
    return {m.kernel_size for m in module.modules() if isinstance(m, torch.nn.Conv2d)}


def test_5x5_versus_two_3x3():
    factorized = inceptionzoo.create_model("inception_v3")
    plain = inceptionzoo.create_model("inception_v3", factorize_5x5=False)
    assert factorized.Mixed_5b.branch3x3dbl_3 is not None and factorized.Mixed_5b.branch5x5b_2 is None
    assert plain.Mixed_5b.branch3x3dbl_1 is None and plain.Mixed_5b.branch5x5b_2.conv.kernel_size == (5, 5)
    # figure 5: two 3x3 are cheaper than one 5x5 of the same width
    assert count_macs(factorized) < count_macs(plain)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_asymmetric_factorization_and_its_n(n):
    model = inceptionzoo.create_model("inception_v3", nxn=n)
    assert {(1, n), (n, 1)} <= conv_kernels(model.Mixed_6b)
    whole = inceptionzoo.create_model("inception_v3", nxn=n, factorize_nxn=False)
    assert (n, n) in conv_kernels(whole.Mixed_6b) and whole.Mixed_6b.branch7x7_3 is None
    assert (1, n) not in conv_kernels(whole.Mixed_6b)
    # figure 6: 1 x n + n x 1 costs less than n x n
    assert count_macs(model) < count_macs(whole)


def test_expanded_filter_bank():
    expanded = inceptionzoo.create_model("inception_v3")
    plain = inceptionzoo.create_model("inception_v3", expanded_filter_bank=False).eval()
    assert expanded.num_features == 2048
    assert plain.num_features == 320 + 2 * 384 + 192 and plain.Mixed_7b.branch3x3_2b is None
    with torch.no_grad():
        assert plain(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


def test_grid_reduction_kinds_match_figures_9_and_10():
    macs = {}
    for kind in ("parallel", "pool_first", "conv_first"):
        model = inceptionzoo.create_model("inception_v3", grid_reduction=kind).eval()
        with torch.no_grad():
            maps = model.forward_intermediates(torch.randn(1, 3, 299, 299), intermediates_only=True)
        assert [m.shape for m in maps[-2:]] == [(1, 768, 17, 17), (1, 2048, 8, 8)]
        macs[kind] = count_macs(model)
    # pooling first is cheapest (but a bottleneck), convolving first the most expensive, parallel in between
    assert macs["pool_first"] < macs["parallel"] < macs["conv_first"]
    with pytest.raises(ValueError, match="grid_reduction must be one of"):
        inceptionzoo.create_model("inception_v3", grid_reduction="strided")


def test_aux_head_and_its_batchnorm():
    with_bn = inceptionzoo.create_model("inception_v3", aux_logits=True).state_dict()
    without_bn = inceptionzoo.create_model("inception_v3", aux_logits=True, aux_fc_norm=False).state_dict()
    assert "AuxLogits.conv1.bn.weight" in with_bn and "AuxLogits.conv1.bn.weight" not in without_bn
    assert "AuxLogits.conv1.conv.bias" in without_bn
    assert not any(k.startswith("AuxLogits") for k in inceptionzoo.create_model("inception_v3").state_dict())


def test_lrn_or_batchnorm():
    lrn = inceptionzoo.create_model("inception_v1")
    bn = inceptionzoo.create_model("inception_v1", norm="batchnorm")
    assert any(isinstance(m, torch.nn.LocalResponseNorm) for m in lrn.modules())
    assert not any(isinstance(m, torch.nn.LocalResponseNorm) for m in bn.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())


@pytest.mark.parametrize("name", ["inception_v3", "inception_v1_bn", "bn_inception", "inception_v1_tv",
                                  "inception_v1_cifar", "inception_v1"])  # fmt: skip
def test_norm_and_activation_layers(name):
    model = inceptionzoo.create_model(name, act_layer="gelu", norm_layer=torch.nn.BatchNorm2d).eval()
    assert any(type(m).__name__ == "GELU" for m in model.modules())  # timm's GELU for the name "gelu"
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    no_norm = inceptionzoo.create_model(name, norm_layer=None)  # no norm layer at all: biased convolutions
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in no_norm.modules())
    assert all(m.bias is not None for m in no_norm.modules() if isinstance(m, torch.nn.Conv2d))
    default = inceptionzoo.create_model(name)  # the config's own choice: BatchNorm, except the 2014 LRN GoogLeNet
    has_batchnorm = any(isinstance(m, torch.nn.BatchNorm2d) for m in default.modules())
    assert has_batchnorm == (name != "inception_v1")
    assert no_norm(torch.randn(1, 3, *no_norm.min_input_size)).shape == (1, no_norm.num_classes)


@pytest.mark.parametrize("name", ["inception_v3", "inception_v1_bn", "bn_inception"])
def test_width_multiplier(name):
    full = inceptionzoo.create_model(name)
    half = inceptionzoo.create_model(name, width_multiplier=0.5)
    widths = [m.out_channels for m in half.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths)
    ratio = count_parameters(half) / count_parameters(full)
    assert 0.2 < ratio < 0.35  # parameters scale with width squared (the classifier only linearly)


@pytest.mark.parametrize("name", ["inception_v3", "inception_v1", "bn_inception"])
def test_dropout(name):
    assert inceptionzoo.create_model(name, drop_rate=0.3).head_drop.p == 0.3


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    factorize_5x5=st.booleans(),
    factorize_nxn=st.booleans(),
    nxn=st.sampled_from([3, 5, 7]),
    expanded_filter_bank=st.booleans(),
    grid_reduction=st.sampled_from(["parallel", "pool_first", "conv_first"]),
    aux_logits=st.booleans(),
    aux_fc_norm=st.booleans(),
)
def test_any_combination_of_choices_trains(**choices):
    model = inceptionzoo.create_model(
        "inception_v3", stem="cifar", width_multiplier=0.125, num_classes=10, **choices
    ).train()
    x = torch.randn(2, 3, *(max(32, size) for size in model.min_input_size))  # aux heads need a bigger input
    out = model(x)
    outputs = out if isinstance(out, tuple) else (out,)
    sum(o.square().mean() for o in outputs).backward()
    assert all(o.shape == (2, 10) for o in outputs)
    assert all(p.grad is not None for p in model.parameters())
