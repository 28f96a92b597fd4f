import pytest
import torch

import inceptionzoo

MODEL_NAMES = inceptionzoo.list_models()


def realistic_batchnorm(model: torch.nn.Module, size: int, steps: int = 3, batch: int = 4) -> torch.nn.Module:
    """Give BatchNorm layers running statistics from a few train-mode passes, so eval outputs are sane."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, getattr(model, "in_chans", 3), size, size))
    return model.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference ``b``."""
    return ((a - b).abs().max() / b.abs().max()).item()


def make_input(model: torch.nn.Module, batch: int = 2, extra: int = 0) -> torch.Tensor:
    """A random batch at the model's minimum input size (plus ``extra`` pixels)."""
    height, width = model.min_input_size
    return torch.randn(batch, model.in_chans, height + extra, width + extra)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_network(tmp_path, monkeypatch):
    """No test reaches the real Hub: offline by default, a private cache, and a loopback endpoint that refuses.

    The weights tests replace these with their loopback Hub server.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
