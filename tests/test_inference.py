"""The inference fast path computes the same function: BatchNorm folding, merged branch convolutions, layouts, bf16."""

import pytest
import torch

import inceptionzoo
from conftest import MODEL_NAMES, make_input, realistic_batchnorm, relative_error
from inceptionzoo.inference import fold_batchnorm, optimize_for_inference


def prepared(name: str, **kwargs) -> torch.nn.Module:
    model = inceptionzoo.create_model(name, **kwargs)
    height, width = model.min_input_size
    return realistic_batchnorm(model, size=max(height, width, 64), steps=2, batch=2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fp32_fast_path_gives_the_same_logits(name):
    model = prepared(name)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    fast = optimize_for_inference(model)
    x = make_input(model, batch=2, extra=8)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert got.dtype == torch.float32 and relative_error(got, expected) < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert fast.pretrained_cfg == model.pretrained_cfg and fast.num_classes == model.num_classes
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == norms  # the original is untouched


def test_branch_convolutions_are_merged_and_aux_outputs_kept():
    model = prepared("inception_v3", aux_logits=True).eval()
    fast = optimize_for_inference(model)
    merged = [name for name, _ in fast.named_modules() if name.endswith("_merged")]
    # Mixed_5b-5d, 6b-6e, 7a, 7b, 7c open 2-3 branches with a 1x1 convolution of the module's input; 6a has one only
    assert len(merged) == 10 and not any("Mixed_6a" in name for name in merged), merged
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert type(got) is type(expected)
    assert relative_error(got.logits, expected.logits) < 1e-4
    assert relative_error(got.aux_logits, expected.aux_logits) < 1e-4


def test_bf16_fast_path_agrees_on_the_top_class():
    model = prepared("inception_v1_tv")
    fast = optimize_for_inference(model, dtype=torch.bfloat16)
    x = torch.randn(8, 3, 96, 96)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert got.dtype == torch.float32
    assert relative_error(got, expected) < 5e-2  # bf16 keeps 8 bits of mantissa
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.75


def test_folding_needs_eval_mode_and_rejects_odd_dtypes():
    model = inceptionzoo.create_model("inception_v1_cifar")
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(model.train())
    with pytest.raises(ValueError, match="dtype"):
        optimize_for_inference(model.eval(), dtype=torch.int8)


def test_compiled_fast_path_gives_the_same_logits():
    model = prepared("inception_v1_cifar")
    fast = optimize_for_inference(model, compile=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        expected, got = model(x), fast(x)
    assert relative_error(got, expected) < 1e-4
