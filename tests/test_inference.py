"""The inference fast path computes the same function: BatchNorm folding, fused ReLU, merged branch convolutions,
layouts, bf16."""

import pytest
import torch
from torch import fx, nn

import inceptionzoo
from conftest import MODEL_NAMES, make_input, realistic_batchnorm, relative_error
from inceptionzoo.deploy import optimize_for_inference
from inceptionzoo.deploy.passes import ConvReLU2d, fold_batchnorm, fuse_relu
from inceptionzoo.train.data import batches, load_image_folder


def prepared(name: str, **kwargs) -> torch.nn.Module:
    model = inceptionzoo.create_model(name, **kwargs)
    height, width = model.min_input_size
    return realistic_batchnorm(model, size=max(height, width, 64), steps=2, batch=2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fp32_fast_path_gives_the_same_logits(name):
    model = prepared(name)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    fast = optimize_for_inference(model, dtype=torch.float32)
    x = make_input(model, batch=2, extra=8)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert got.dtype == torch.float32 and relative_error(got, expected) < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert fast.pretrained_cfg == model.pretrained_cfg and fast.num_classes == model.num_classes
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == norms  # the original is untouched


def test_branch_convolutions_are_merged_and_aux_outputs_kept():
    model = prepared("inception_v3", aux_logits=True).eval()
    fast = optimize_for_inference(model, dtype=torch.float32)
    merged = [name for name, _ in fast.named_modules() if name.endswith("_merged")]
    # Mixed_5b-5d, 6b-6e, 7a, 7b, 7c open 2-3 branches with a 1x1 convolution of the module's input; 6a has one only
    assert len(merged) == 10 and not any("Mixed_6a" in name for name in merged), merged
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert type(got) is type(expected)
    assert relative_error(got.logits, expected.logits) < 1e-4
    assert relative_error(got.aux_logits, expected.aux_logits) < 1e-4


def test_every_relu_after_a_convolution_runs_inside_it():
    model = prepared("inception_v3").eval()
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    fast = optimize_for_inference(model, dtype=torch.float32, merge_branches=False)
    assert sum(isinstance(m, ConvReLU2d) for m in fast.modules()) == relus == 94
    assert not any(isinstance(m, nn.ReLU) for m in fast.modules())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fused_convolution_equals_convolution_then_relu(dtype, layout):
    """oneDNN's post-op path (float32, bfloat16) and the fallback (float64) in either layout, strided or grouped."""
    conv = nn.Conv2d(8, 12, (3, 5), stride=(2, 1), padding=(1, 2), groups=2).to(dtype)
    graph = fx.symbolic_trace(nn.Sequential(conv, nn.Identity(), nn.ReLU(inplace=True)))
    assert fuse_relu(graph) == 1
    assert [type(m) for m in graph.children()] == [ConvReLU2d]
    x = torch.randn(3, 8, 11, 13, dtype=dtype).contiguous(memory_format=layout)
    with torch.no_grad():
        expected = torch.relu(conv(x))
        got = graph(x)
    assert got.shape == expected.shape and (got >= 0).all()
    torch.testing.assert_close(got, expected, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-2)


def test_a_convolution_used_twice_keeps_its_separate_relu():
    class TwoUses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return torch.relu(y) + y

    graph = fx.symbolic_trace(TwoUses())
    assert fuse_relu(graph) == 0 and type(graph.conv) is nn.Conv2d


def test_bf16_agrees_with_fp32_on_real_images(cifar_subset):
    """Real CIFAR-10 photographs (BatchNorm statistics taken from them): bf16 logits within 5% of the largest fp32
    logit, and the same top class for at least 90% of the images."""
    images = load_image_folder(cifar_subset, "train")
    model = inceptionzoo.create_model("inception_v1_cifar")
    mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]
    x, _ = next(iter(batches(images, len(images), mean, std)))
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    fast = optimize_for_inference(model, dtype=torch.bfloat16)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert relative_error(got, expected) < 5e-2
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.9


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
        optimize_for_inference(model.eval(), dtype=torch.int8)  # torch.qint8 or "int8" is int8
    with pytest.raises(ValueError, match="dtype"):
        optimize_for_inference(model.eval(), dtype="fp8")
    with pytest.raises(ValueError, match="engine"):
        optimize_for_inference(model.eval(), engine="tensorrt")
    with pytest.raises(ValueError, match="calibration_batches"):
        optimize_for_inference(model.eval(), dtype="int8")


@pytest.mark.slow
def test_compiled_fast_path_gives_the_same_logits():
    model = prepared("inception_v1_cifar")
    fast = optimize_for_inference(model, dtype=torch.float32, compile=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        expected, got = model(x), fast(x)
    assert relative_error(got, expected) < 1e-4
