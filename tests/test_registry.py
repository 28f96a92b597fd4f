import pytest
import torch
from timm.models import PretrainedCfg

import inceptionzoo
from inceptionzoo import _registry
from inceptionzoo._registry import UnknownModelError

pytestmark = pytest.mark.lowest  # the lowest supported versions too


def test_list_models_wildcards_and_excludes():
    all_models = inceptionzoo.list_models()
    assert "inception_v3" in all_models
    assert all_models == sorted(all_models, key=_registry._natural_key)
    assert inceptionzoo.list_models("inception_v3*") == [n for n in all_models if n.startswith("inception_v3")]
    assert "inception_v3" not in inceptionzoo.list_models("inception_v3*", exclude_filters="inception_v3")
    assert inceptionzoo.list_models("no_such_family*") == []
    assert inceptionzoo.list_models(["inception_v3", "nothing*"]) == ["inception_v3"]


def test_pretrained_listing_is_only_real_weights():
    for name in inceptionzoo.list_pretrained():
        assert inceptionzoo.get_pretrained_cfg(name).has_weights
    assert inceptionzoo.list_models(pretrained=True) == inceptionzoo.list_pretrained()


def test_is_model_and_entrypoint():
    assert inceptionzoo.is_model("inception_v3")
    assert inceptionzoo.is_model("inception_v3.sometag")
    assert not inceptionzoo.is_model("resnet50")
    assert inceptionzoo.model_entrypoint("inception_v3").__name__ == "inception_v3"


@pytest.mark.parametrize("typo", ["inceptoin_v3", "inception_3", "Inception_v3", "inception_v3x"])
def test_unknown_name_lists_close_matches(typo):
    with pytest.raises(UnknownModelError, match="Did you mean: inception_v3"):
        inceptionzoo.create_model(typo)
    with pytest.raises(ValueError, match="unknown model"):
        inceptionzoo.get_pretrained_cfg(typo)


def test_unknown_tag_names_the_real_ones():
    with pytest.raises(UnknownModelError, match="no weights tagged 'nope'"):
        inceptionzoo.create_model("inception_v3.nope")


def test_pretrained_cfg_fields():
    cfg = inceptionzoo.get_pretrained_cfg("inception_v3")
    assert isinstance(cfg, PretrainedCfg)
    assert cfg.input_size == (3, 299, 299)
    assert cfg.first_conv == "Conv2d_1a_3x3.conv" and cfg.classifier == "fc"
    assert cfg.paper_ids and cfg.license
    # a copy: changing it does not change the registry
    cfg.input_size = (3, 1, 1)
    assert inceptionzoo.get_pretrained_cfg("inception_v3").input_size == (3, 299, 299)


def test_unknown_kwargs_are_named_with_the_closest_argument():
    with pytest.raises(TypeError, match="unknown argument.*aux_logitz.*did you mean 'aux_logits'"):
        inceptionzoo.create_model("inception_v3", aux_logitz=True)
    with pytest.raises(TypeError, match=r"num_clases \(did you mean 'num_classes' for 'num_clases'\?\)"):
        inceptionzoo.create_model("inception_v1", num_clases=10)
    with pytest.raises(TypeError, match="did you mean 'feature_cls'"):
        inceptionzoo.create_model("inception_v1", features_only=True, feature_clss="dict")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) zzz; it accepts"):  # nothing close: no guess
        inceptionzoo.create_model("inception_v1", zzz=1)


def test_timms_create_model_arguments_are_taken():
    assert inceptionzoo.create_model("inception_v3", pretrained_cfg="tv_in1k").pretrained_cfg["tag"] == "tv_in1k"
    with pytest.raises(ValueError, match="two different weight tags"):
        inceptionzoo.create_model("inception_v3.tf_in1k", pretrained_cfg="tv_in1k")
    with pytest.raises(UnknownModelError, match="no weights tagged 'nope'"):
        inceptionzoo.create_model("inception_v3", pretrained_cfg="nope")
    custom = inceptionzoo.create_model("inception_v1", pretrained_cfg={"crop_pct": 0.9, "mean": (0.5, 0.5, 0.5)})
    assert custom.pretrained_cfg["crop_pct"] == 0.9 and custom.pretrained_cfg["architecture"] == "inception_v1"
    model = inceptionzoo.create_model("inception_v3", scriptable=True, exportable=True, no_jit=True)
    torch.jit.script(model)


def test_pretrained_without_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="no pretrained weights.*checkpoint_path"):
        inceptionzoo.create_model("inception_v2", pretrained=True)


def test_pretrained_cfg_overlay():
    model = inceptionzoo.create_model("inception_v3", pretrained_cfg_overlay={"crop_pct": 1.0})
    assert model.pretrained_cfg["crop_pct"] == 1.0
    with pytest.raises(TypeError, match="unknown field"):
        inceptionzoo.create_model("inception_v3", pretrained_cfg_overlay={"crop_percent": 1.0})


def test_third_party_register_model():
    class Tiny(torch.nn.Module):
        def __init__(self, num_classes: int = 1000, in_chans: int = 3, width: int = 4):
            super().__init__()
            self.num_classes, self.in_chans = num_classes, in_chans
            self.conv = torch.nn.Conv2d(in_chans, width, 3)
            self.fc = torch.nn.Linear(width, num_classes)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    def tiny_test_net(pretrained=False, **kwargs):
        return inceptionzoo._builder.build_model_with_cfg(Tiny, "tiny_test_net", pretrained, **kwargs)

    try:
        inceptionzoo.register_model(tiny_test_net)
        assert "tiny_test_net" in inceptionzoo.list_models("tiny*")
        model = inceptionzoo.create_model("tiny_test_net", num_classes=7, width=2)
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 7)
        assert model.pretrained_cfg["num_classes"] == 7
        with pytest.raises(TypeError, match="depth"):
            inceptionzoo.create_model("tiny_test_net", depth=3)
        inceptionzoo.register_model(tiny_test_net)  # the same builder again (a module reload): fine

        def another():
            def tiny_test_net(pretrained=False, **kwargs):
                return inceptionzoo._builder.build_model_with_cfg(Tiny, "tiny_test_net", pretrained, **kwargs)

            return tiny_test_net

        with pytest.raises(ValueError, match="'tiny_test_net' is already registered .*override=True"):
            inceptionzoo.register_model(another())
        replacement = another()
        assert inceptionzoo.register_model(override=True)(replacement) is replacement
        assert inceptionzoo.create_model("tiny_test_net", width=3).conv.out_channels == 3

        def inception_v3(pretrained=False, **kwargs):
            return Tiny(**kwargs)

        with pytest.raises(ValueError, match="'inception_v3' is already registered"):
            inceptionzoo.register_model(inception_v3)  # a library model is never replaced by accident
        assert inceptionzoo.create_model("inception_v3").num_classes == 1000
    finally:
        for table in (_registry._model_entrypoints, _registry._model_tags):
            table.pop("tiny_test_net", None)
        _registry._model_default_tags.pop("tiny_test_net", None)
        _registry._pretrained_cfgs.pop("tiny_test_net", None)
    assert "tiny_test_net" not in inceptionzoo.list_models()


def test_names_people_type_resolve_to_the_canonical_models():
    """torchvision's and Cadene's names build our models; timm's retired v3 names load their weights' configs with
    timm's warning; none is listed, and none can be taken by a new model."""
    googlenet = inceptionzoo.create_model("googlenet")
    assert (
        googlenet.pretrained_cfg["architecture"] == "inception_v1_tv" and googlenet.pretrained_cfg["tag"] == "tv_in1k"
    )
    assert inceptionzoo.create_model("bninception").pretrained_cfg["architecture"] == "bn_inception_caffe"
    assert inceptionzoo.is_model("googlenet") and inceptionzoo.get_pretrained_cfg("googlenet.tv_in1k").tag == "tv_in1k"
    for old, new in [
        ("tf_inception_v3", "tf_in1k"),
        ("adv_inception_v3", "tf_adv_in1k"),
        ("gluon_inception_v3", "gluon_in1k"),
    ]:
        with pytest.warns(UserWarning, match=f"Mapping deprecated model name {old} to current inception_v3.{new}"):
            model = inceptionzoo.create_model(old, num_classes=10)
        assert model.pretrained_cfg["tag"] == new and model.num_classes == 10
    listed = inceptionzoo.list_models(include_tags=True)
    assert not {"googlenet", "bninception", "tf_inception_v3"} & {name.split(".")[0] for name in listed}

    def googlenet(pretrained=False, **kwargs):
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already an alias"):
        inceptionzoo.register_model(googlenet)
    with pytest.raises(ValueError, match="not a registered model"):
        inceptionzoo.register_model_aliases({"my_net": "inception_v9"})
