"""Inception-v3 is interchangeable with timm's and torchvision's: same keys, same parameters, same logits."""

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

import inceptionzoo
from conftest import realistic_batchnorm


@pytest.fixture(scope="module")
def trained_pair():
    """Our model with aux head and realistic BatchNorm statistics, plus its state dict."""
    torch.manual_seed(0)
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v3", aux_logits=True), size=299, batch=4)
    return model, model.state_dict()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


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


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_checkpoint_path_loads_timm_checkpoints(trained_pair, tmp_path, suffix):
    _, state_dict = trained_pair
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save({"state_dict": state_dict, "epoch": 3}, path)
    with_aux = inceptionzoo.create_model("inception_v3", aux_logits=True, checkpoint_path=path)
    without_aux = inceptionzoo.create_model("inception_v3", checkpoint_path=path)  # aux weights are dropped
    for model in (with_aux, without_aux):
        own = model.state_dict()
        for key, value in own.items():
            torch.testing.assert_close(value, state_dict[key], rtol=0, atol=0)


def test_checkpoint_that_does_not_fit_lists_keys(trained_pair, tmp_path):
    _, state_dict = trained_pair
    broken = dict(state_dict)
    del broken["Mixed_6b.branch1x1.conv.weight"]
    broken["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in broken.items()}, str(path))
    with pytest.raises(inceptionzoo.CheckpointMismatchError) as info:
        inceptionzoo.create_model("inception_v3", checkpoint_path=path)
    message = str(info.value)
    assert "Mixed_6b.branch1x1.conv.weight" in message and "extra.weight" in message
    intact = tmp_path / "intact.pth"
    torch.save(state_dict, intact)
    with pytest.raises(inceptionzoo.CheckpointMismatchError, match=r"fc.weight \(checkpoint \(1000, 2048\)"):
        inceptionzoo.create_model("inception_v3", num_classes=10, checkpoint_path=intact)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        inceptionzoo.create_model("inception_v3", checkpoint_path=tmp_path / "nope.safetensors")
