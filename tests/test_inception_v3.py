"""Inception-v3 is interchangeable with timm's and torchvision's: same keys, same parameters, same logits."""

import pytest
import timm
import torch
import torchvision

import inceptionzoo
from conftest import realistic_batchnorm, relative_error

pytestmark = pytest.mark.lowest  # equal to the lowest supported timm and torchvision too


@pytest.fixture(scope="module")
def trained_pair():
    """Our model with aux head and realistic BatchNorm statistics, plus its state dict."""
    torch.manual_seed(0)
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v3", aux_logits=True), size=299, batch=4)
    return model, model.state_dict()


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(inceptionzoo.create_model("inception_v3")) == 23_834_568
    assert count(inceptionzoo.create_model("inception_v3", aux_logits=True)) == 27_161_264


def test_state_dict_keys_equal_timm_and_torchvision():
    ours = inceptionzoo.create_model("inception_v3", aux_logits=True).state_dict()
    timm_keys = timm.create_model("inception_v3", aux_logits=True).state_dict().keys()
    tv = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    assert list(ours) == list(timm_keys)
    assert set(ours) == set(tv.state_dict())
    no_aux = inceptionzoo.create_model("inception_v3").state_dict()
    assert list(no_aux) == list(timm.create_model("inception_v3").state_dict())


def test_logits_equal_timm(trained_pair):
    model, state_dict = trained_pair
    theirs = timm.create_model("inception_v3", aux_logits=True)
    theirs.load_state_dict(state_dict, strict=True)
    theirs.eval()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        ours_out, (their_logits, their_aux) = model(x), theirs(x)
    assert relative_error(ours_out.logits, their_logits) <= 1e-5
    assert relative_error(ours_out.aux_logits, their_aux) <= 1e-5


def test_logits_equal_torchvision(trained_pair):
    model, state_dict = trained_pair
    theirs = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False)
    theirs.load_state_dict(state_dict, strict=True)
    theirs.eval()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        ours_logits, their_logits = model(x).logits, theirs(x)
    assert relative_error(ours_logits, their_logits) <= 1e-5
    # and the other way round: torchvision's weights into our model without the aux head, via checkpoint_path
    theirs.train()
    with torch.no_grad():
        theirs(torch.randn(2, 3, 299, 299))  # move its BN statistics away from ours
    theirs.eval()
    plain = inceptionzoo.create_model("inception_v3")
    incompatible = plain.load_state_dict(theirs.state_dict(), strict=False)
    assert incompatible.missing_keys == [] and all(k.startswith("AuxLogits") for k in incompatible.unexpected_keys)
    with torch.no_grad():
        assert relative_error(plain.eval()(x), theirs(x)) <= 1e-5


def test_table3_rows_are_configs_of_one_network():
    v3 = set(inceptionzoo.create_model("inception_v3", aux_logits=True).state_dict())
    f7x7 = set(inceptionzoo.create_model("inception_v2_f7x7", aux_logits=True).state_dict())
    v2 = set(inceptionzoo.create_model("inception_v2", aux_logits=True).state_dict())
    # row 8 adds BatchNorm to the aux head's "fully connected" layer, nothing else
    assert v3 - f7x7 == {k for k in v3 if k.startswith("AuxLogits.conv1.bn.")}
    assert f7x7 - v3 == {"AuxLogits.conv1.conv.bias"}
    # row 7 factorizes the 7x7 stem into three 3x3 convolutions, nothing else
    stem_3x3 = {k for k in f7x7 if k.startswith(("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"))}
    assert f7x7 - v2 == stem_3x3
    assert {k.split(".")[0] for k in v2 - f7x7} == {"Conv2d_1a_7x7"}
    # rows 4, 5 and 6 are one network with three training recipes
    rows = ["inception_v2", "inception_v2_rmsprop", "inception_v2_ls"]
    models = [inceptionzoo.create_model(name) for name in rows]
    assert len({tuple((k, v.shape) for k, v in m.state_dict().items()) for m in models}) == 1
    from inceptionzoo.train import recipe_for

    assert [recipe_for(m).name for m in models] == ["momentum_sgd", "rmsprop", "rmsprop_label_smoothing"]
    assert [m.pretrained_cfg["paper_row"].split(":")[0] for m in models] == [f"Table 3, row {r}" for r in (4, 5, 6)]


@pytest.mark.parametrize("argument", ["training_recipe", "paper_row"])
def test_recipes_and_paper_rows_are_metadata_not_arguments(argument):
    """Which recipe trained a row lives in train/recipes.py and the row in pretrained_cfg, not in the config."""
    with pytest.raises(TypeError, match=argument):
        inceptionzoo.create_model("inception_v2", **{argument: "rmsprop"})


@pytest.mark.parametrize(
    ("name", "size", "grid35"),
    [("inception_v3", 299, 35), ("inception_v3_rf151", 151, 35), ("inception_v3_rf79", 79, 36)],
)
def test_section8_low_resolution_networks_keep_the_grid(name, size, grid35):
    model = inceptionzoo.create_model(name).eval()
    assert model.pretrained_cfg["input_size"] == (3, size, size)
    with torch.no_grad():
        maps = model.forward_intermediates(torch.randn(1, 3, size, size), intermediates_only=True)
    assert maps[2].shape[-1] == grid35
    assert maps[-1].shape[-2:] == (8, 8)


def test_invalid_config_is_explained():
    from inceptionzoo.models.inception_v3 import InceptionV3Config

    with pytest.raises(ValueError, match="stem must be"):
        InceptionV3Config(stem="conv_5x5")
