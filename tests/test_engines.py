"""Inference engines come from one table: an engine registered there is reachable by name through
``optimize_for_inference``, and an unknown name is an error listing the registered ones."""

import pytest
import torch
from torch import nn

import inceptionzoo
from inceptionzoo.deploy import ENGINES, optimize_for_inference, register_engine


class Recorded(nn.Module):
    """The toy engine's result: the model itself, run as it is."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.precision, self.precision_reason = "float32", "the toy engine runs the model as it is"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@pytest.fixture
def toy_engine():
    calls = []

    def toy(model, dtype, **options):
        calls.append((model, dtype, options))
        return Recorded(model)

    register_engine("toy", toy)
    yield calls
    del ENGINES["toy"]


def test_a_registered_engine_is_reachable_by_name(toy_engine):
    model = inceptionzoo.create_model("inception_v1_cifar").eval()
    fast = optimize_for_inference(model, engine="toy", dtype=torch.float32, merge_branches=False)
    assert isinstance(fast, Recorded) and fast.model is model
    ((called_with, dtype, options),) = toy_engine
    assert called_with is model and dtype == torch.float32
    assert options == {"compile": False, "merge_branches": False, "calibration_batches": None}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fast(x), model(x))
    assert inceptionzoo.optimize_for_inference is optimize_for_inference  # the public name is the table's user


def test_an_unknown_engine_lists_the_registered_ones(toy_engine):
    with pytest.raises(ValueError, match=r"unknown engine 'tensorrt'.*onnxruntime, torch, toy"):
        optimize_for_inference(nn.Linear(2, 2), engine="tensorrt")


def test_a_taken_engine_name_is_not_replaced_silently(toy_engine):
    with pytest.raises(ValueError, match="registered already"):
        register_engine("torch", lambda model, dtype, **options: model)
    assert set(ENGINES) >= {"torch", "onnxruntime", "toy"}
