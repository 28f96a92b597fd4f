import pytest
import torch

import inceptionzoo

MODEL_NAMES = inceptionzoo.list_models()


def realistic_batchnorm(model: torch.nn.Module, size: int, steps: int = 3, batch: int = 4) -> torch.nn.Module:
    """Give BatchNorm layers running statistics from a few train-mode passes, so eval outputs are sane."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, model.in_chans, size, size))
    return model.eval()


def make_input(model: torch.nn.Module, batch: int = 2, extra: int = 0) -> torch.Tensor:
    """A random batch at the model's minimum input size (plus ``extra`` pixels)."""
    height, width = model.min_input_size
    return torch.randn(batch, model.in_chans, height + extra, width + extra)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
