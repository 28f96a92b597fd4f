"""The contract every registered model keeps; parametrised over the registry so new models are covered."""

import inspect

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timm.models import group_parameters

import inceptionzoo
from conftest import MODEL_NAMES, make_input
from conftest import shared_model as shared


def build(name: str, **kwargs) -> torch.nn.Module:
    """A fresh model, for tests that change it."""
    return inceptionzoo.create_model(name, **kwargs)


def takes_aux(name: str) -> bool:
    return "aux_logits" in inspect.signature(type(shared(name)).__init__).parameters


@pytest.mark.lowest
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes(name):
    model = shared(name)
    x = make_input(model)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        head = model.forward_head(features)
    assert logits.shape == (2, model.num_classes)
    assert features.dim() == 4 and features.shape[:2] == (2, model.num_features)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(head, logits)
    assert model.get_classifier() is model.get_submodule(model.pretrained_cfg["classifier"])


@pytest.mark.lowest
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pretrained_cfg_attribute(name):
    model = shared(name)
    cfg = model.pretrained_cfg
    for key in ("input_size", "min_input_size", "mean", "std", "crop_pct", "interpolation", "num_classes"):
        assert key in cfg, key
    for key in ("pool_size", "first_conv", "classifier", "license", "paper_ids"):
        assert cfg.get(key), key
    assert tuple(cfg["min_input_size"][1:]) == tuple(model.min_input_size)
    assert model.get_submodule(cfg["first_conv"]).in_channels == model.in_chans
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert cfg["num_classes"] == model.num_classes
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, *cfg["input_size"]))
    assert tuple(features.shape[-2:]) == tuple(cfg["pool_size"])
    # timm's data pipeline reads it
    from timm.data import resolve_data_config

    assert resolve_data_config({}, model=model)["input_size"] == cfg["input_size"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_num_classes_zero_and_unpooled(name):
    model = build(name, num_classes=0).eval()
    x = make_input(model)
    with torch.no_grad():
        assert model(x).shape == (2, model.num_features)
    model = build(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        out = model(x)
    assert out.dim() == 4 and out.shape[1] == model.num_features
    torch.testing.assert_close(out, model.forward_features(x))
    with pytest.raises(ValueError, match="num_classes=0"):
        build(name, global_pool="")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reset_classifier_resets_aux_heads(name):
    kwargs = {"aux_logits": True} if takes_aux(name) else {}
    model = build(name, **kwargs)
    model.reset_classifier(7)
    assert model.num_classes == 7
    model.eval()
    with torch.no_grad():
        out = model(make_input(model, batch=1))
    outputs = out if isinstance(out, tuple) else (out,)
    for tensor in outputs:
        assert tensor.shape == (1, 7)
    model.reset_classifier(0, global_pool="max")
    with torch.no_grad():
        out = model(make_input(model, batch=1))
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (1, model.num_features)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_aux_heads_return_one_type_in_both_modes(name):
    if not takes_aux(name):
        pytest.skip("no auxiliary head")
    assert not isinstance(shared(name)(make_input(shared(name), batch=1)), tuple), "aux heads must be off by default"
    model = build(name, aux_logits=True, num_classes=5)
    x = make_input(model, batch=2)
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out)
    assert isinstance(train_out, inceptionzoo.InceptionOutputs | inceptionzoo.GoogLeNetOutputs)
    assert train_out._fields[0] == "logits" and len(train_out) >= 2
    for tensor in train_out:
        assert tensor.shape == (2, 5)
    sum(tensor.sum() for tensor in train_out).backward()


@pytest.mark.lowest
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_features_only_and_intermediates_agree(name):
    model = shared(name)
    taps = len(model.feature_info)
    x = make_input(model)
    extractor = build(name, features_only=True).eval()
    incompatible = extractor.load_state_dict(model.state_dict(), strict=False)
    assert not incompatible.missing_keys
    with torch.no_grad():
        maps = extractor(x)
        final, intermediates = model.forward_intermediates(x)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True, stop_early=True)
    assert len(maps) == len(intermediates) == taps
    assert extractor.feature_info.channels() == [info["num_chs"] for info in model.feature_info]
    for fmap, inter, info in zip(maps, intermediates, model.feature_info, strict=True):
        assert fmap.shape[1] == info["num_chs"]
        torch.testing.assert_close(fmap, inter)
    torch.testing.assert_close(final, model.forward_features(x))
    torch.testing.assert_close(last_two[-1], intermediates[-1])
    picked = build(name, features_only=True, out_indices=(1, -1)).eval()
    picked.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        two = picked(x)
    torch.testing.assert_close(two, [maps[1], maps[-1]])
    assert [t.shape[1] for t in two] == [model.feature_info[1]["num_chs"], model.feature_info[-1]["num_chs"]]
    assert picked.feature_info.reduction() == [model.feature_info[1]["reduction"], model.feature_info[-1]["reduction"]]
    with pytest.raises(ValueError, match="out_indices"):
        build(name, features_only=True, out_indices=(taps,))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_timms_getter_feature_class(name):
    """``feature_cls="getter"`` (what timm's own model tests pass) gives forward_intermediates' maps."""
    torch.manual_seed(0)
    model = build(name).eval()
    x = make_input(model)
    torch.manual_seed(0)  # the same weights: the wrapper's keys differ from the model's (model.*)
    getter = build(name, features_only=True, feature_cls="getter", out_indices=(0, -1)).eval()
    with torch.no_grad():
        maps = getter(x)
        expected = model.forward_intermediates(x, indices=[0, len(model.feature_info) - 1], intermediates_only=True)
    torch.testing.assert_close(maps, expected)
    assert getter.pretrained_cfg["architecture"] == model.pretrained_cfg["architecture"]


@pytest.mark.parametrize("feature_cls", ["dict", "hook", "fx", "list"])
@pytest.mark.parametrize("name", ["inception_v1", "inception_v3"])
def test_timms_feature_classes_and_feature_cfg(name, feature_cls):
    torch.manual_seed(0)
    model = build(name).eval()
    x = make_input(model)
    torch.manual_seed(0)
    wrapped = build(name, features_only=True, feature_cfg={"feature_cls": feature_cls, "out_indices": (1, 3)}).eval()
    with torch.no_grad():
        maps = wrapped(x)
        expected = model.forward_intermediates(x, indices=[1, 3], intermediates_only=True)
    torch.testing.assert_close(list(maps.values()) if isinstance(maps, dict) else maps, expected)
    with pytest.raises(ValueError, match="smaller than this model's minimum"):
        wrapped(torch.randn(1, 3, 8, 8))


def test_feature_class_mistakes_are_named():
    with pytest.raises(ValueError, match="feature_cls='lists': choose one of 'list', 'dict', 'hook', 'fx', 'getter'"):
        build("inception_v1", features_only=True, feature_cls="lists")
    with pytest.raises(ValueError, match="pass that too"):
        build("inception_v1", feature_cls="dict")
    with pytest.raises(TypeError, match="does not fit FeatureDictNet"):
        build("inception_v1", features_only=True, feature_cfg={"feature_cls": "dict", "no_such_option": 1})


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_prune_intermediate_layers(name):
    model = build(name).eval()
    x = make_input(model)
    with torch.no_grad():
        reference = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    model.prune_intermediate_layers(indices=[1])
    with torch.no_grad():
        pruned = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    torch.testing.assert_close(pruned, reference)
    assert isinstance(model.get_classifier(), torch.nn.Identity)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_grad_checkpointing_recomputes_and_matches(name):
    model = build(name, num_classes=3, drop_rate=0.0).train()
    x = make_input(model)
    calls = []
    block = model.get_submodule(model.feature_info[-1]["module"])
    block.register_forward_pre_hook(lambda *_: calls.append(1))

    def grads():
        model.zero_grad()
        torch.manual_seed(1)
        model(x).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    # BatchNorm running stats change in every train-mode pass, so compare gradients with frozen stats
    model.apply(lambda m: m.eval() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) else None)
    plain = grads()
    assert len(calls) == 1
    calls.clear()
    model.set_grad_checkpointing(True)
    checkpointed = grads()
    assert len(calls) == 2, "with checkpointing the block runs again in the backward pass"
    assert plain.keys() == checkpointed.keys()
    for key in plain:
        torch.testing.assert_close(plain[key], checkpointed[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_group_matcher_covers_every_parameter(name):
    model = shared(name)
    for coarse in (False, True):
        groups = group_parameters(model, model.group_matcher(coarse=coarse))
        grouped = [p for names in groups.values() for p in names]
        assert sorted(grouped) == sorted(n for n, _ in model.named_parameters())
        assert len(groups) > 2
    # the classifier is the last group
    fine = group_parameters(model, model.group_matcher())
    assert f"{model.pretrained_cfg['classifier']}.weight" in fine[max(fine)]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_input_errors_are_for_people(name):
    model = shared(name)
    height, width = model.min_input_size
    with pytest.raises(ValueError, match="4-D input"):
        model(torch.randn(model.in_chans, height, width))
    with pytest.raises(ValueError, match=f"expected {model.in_chans} input channels, got {model.in_chans + 1}"):
        model(torch.randn(1, model.in_chans + 1, height, width))
    with pytest.raises(ValueError, match=f"minimum of {height}x{width} pixels"):
        model(torch.randn(1, model.in_chans, height - 1, width))
    with pytest.raises(ValueError, match=f"minimum of {height}x{width} pixels"):
        model(torch.randn(1, model.in_chans, height, width - 1))
    extractor = build(name, features_only=True)
    with pytest.raises(ValueError, match="pixels"):
        extractor(torch.randn(1, model.in_chans, height - 1, width - 1))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_aux_head_minimum_size_is_checked(name):
    if not takes_aux(name):
        pytest.skip("no auxiliary head")
    model = build(name, aux_logits=True).eval()
    height, width = model.min_input_size
    assert (height, width) >= tuple(shared(name).min_input_size)
    with torch.no_grad():
        model(torch.randn(1, model.in_chans, height, width))
        with pytest.raises(ValueError, match=f"minimum of {height}x{width}"):
            model(torch.randn(1, model.in_chans, height - 1, width))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(MODEL_NAMES),
    num_classes=st.integers(0, 1500),
    in_chans=st.integers(1, 6),
    extra_height=st.integers(0, 60),
    extra_width=st.integers(0, 60),
)
def test_arguments_and_sizes_property(name, num_classes, in_chans, extra_height, extra_width):
    model = inceptionzoo.create_model(name, num_classes=num_classes, in_chans=in_chans).eval()
    height, width = model.min_input_size
    x = torch.randn(1, in_chans, height + extra_height, width + extra_width)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, num_classes or model.num_features)
    assert torch.isfinite(out).all()
    assert model.pretrained_cfg["input_size"][0] == in_chans


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_matches(name):
    model = shared(name)
    x = make_input(model, extra=7)
    with torch.no_grad():
        reference = model(x)
        model_cl = build(name).eval()
        model_cl.load_state_dict(model.state_dict())
        model_cl = model_cl.to(memory_format=torch.channels_last)
        out = model_cl(x.to(memory_format=torch.channels_last))
    assert (out - reference).abs().max() <= 1e-5 * reference.abs().max()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_channels_last_array_is_told_to_permute(name):
    """An image batch laid out (batch, height, width, channels), as PIL and numpy give it, is told to permute; a
    batch with another channel count is told which in_chans would take it."""
    model = shared(name)
    height, width = model.min_input_size
    size = max(height, width, 3 * model.in_chans + 1)  # no side of the array equals the channel count by chance
    with pytest.raises(ValueError, match=r"channels-last .* pass x\.permute\(0, 3, 1, 2\)"):
        model(torch.randn(1, size, size, model.in_chans))
    with pytest.raises(ValueError, match=rf"build the model with in_chans={model.in_chans + 2}"):
        model(torch.randn(1, model.in_chans + 2, size, size))
