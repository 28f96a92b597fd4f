"""The fast-CIFAR tricks (airbench94's, Page's) do what they claim, each on its own: the whitened stem whitens, frozen
norm scales stay at 1, norm biases learn 64x faster, lookahead ends on its slow weights, the triangle schedule has
its corners, the crop translates with reflected borders, the alternating flip alternates and the TTA averages the
views it names."""

import io
from dataclasses import replace

import pytest
import timm.optim
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import inceptionzoo
from inceptionzoo.models.inception_fast import identity_init_
from inceptionzoo.train import RECIPES, create_optimizer, create_scheduler, recipe_for
from inceptionzoo.train.data.in_memory import ImageTensors, batches
from inceptionzoo.train.data.transforms import Augmentation, pad_crop_flip
from inceptionzoo.train.engine import evaluate
from inceptionzoo.train.optimizers import SplitOptimizer
from inceptionzoo.train.recipes import finish_lookahead, freeze_norm_scales, set_lookahead_alpha
from inceptionzoo.train.whitening import init_patch_whitening_, patch_whitening_filters

FAST = RECIPES["cifar_fast"]


def correlated_images(n: int = 64, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated, as in photographs."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, size, size, generator=generator)
    smooth = nn.functional.avg_pool2d(base, 3, stride=1, padding=1)
    noise = torch.randn(n, 3, size, size, generator=generator)
    return smooth + 0.3 * noise * torch.tensor([1.0, 0.5, 0.8]).view(1, 3, 1, 1)


def test_the_whitened_stem_whitens_training_patches():
    images = correlated_images()
    conv = nn.Conv2d(3, 24, 2)
    init_patch_whitening_(conv, images, eps=1e-6)
    with torch.no_grad():
        out = nn.functional.conv2d(images, conv.weight[:12])  # the 12 whitening filters, no bias
    rows = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    covariance = rows.T @ rows / len(rows)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.double), atol=1e-3)
    # before: far from the identity (the channels are correlated)
    raw = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    assert (raw.T @ raw / len(raw) - torch.eye(12, dtype=torch.double)).abs().max() > 0.3
    # the next 12 filters are the negatives, and the filters are frozen while the bias learns
    assert torch.equal(conv.weight[12:], -conv.weight[:12])
    assert not conv.weight.requires_grad and conv.bias.requires_grad


def test_whitening_needs_enough_filters_and_a_plain_convolution():
    images = correlated_images(8)
    with pytest.raises(ValueError, match="3 channels x 3x3 = 27, but the first convolution has 16"):
        init_patch_whitening_(nn.Conv2d(3, 16, 3), images)
    with pytest.raises(ValueError, match="stride-1"):
        init_patch_whitening_(nn.Conv2d(3, 64, 3, stride=2), images)
    # a wider convolution keeps its other filters
    conv = nn.Conv2d(3, 64, 3)
    before = conv.weight[54:].clone()
    init_patch_whitening_(conv, images)
    assert torch.equal(conv.weight[54:], before)
    assert patch_whitening_filters(images, (3, 3)).shape == (27, 3, 3, 3)


@pytest.mark.lowest  # timm's scheduler, optimizer groups and Lookahead at the lowest versions too
def test_frozen_norm_scales_stay_at_one_and_norm_biases_learn_faster():
    model = inceptionzoo.create_model("inception_fast_cifar", widths=(16, 16, 16))
    frozen = freeze_norm_scales(model)
    assert frozen == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    optimizer = create_optimizer(model, FAST)
    scheduler = create_scheduler(optimizer, FAST, epochs=10, updates_per_epoch=10)
    scheduler.step_update(num_updates=23)  # the peak
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    rates = {}
    for group in optimizer.param_groups:
        kinds = {id(p) in norm_biases for p in group["params"]}
        assert len(kinds) == 1  # a group holds norm biases or none
        rates.setdefault(kinds.pop(), set()).add(round(group["lr"], 9))
    assert rates == {True: {round(64 * FAST.lr, 9)}, False: {round(FAST.lr, 9)}}
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert all(id(m.weight) not in trained for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    x = torch.randn(4, 3, 32, 32)
    nn.functional.cross_entropy(model(x), torch.arange(4)).backward()
    optimizer.step()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)


@pytest.mark.lowest  # timm's scheduler, optimizer groups and Lookahead at the lowest versions too
def test_the_triangle_schedule_has_its_corners():
    model = nn.Linear(2, 2)
    optimizer = create_optimizer(model, FAST)
    scheduler = create_scheduler(optimizer, FAST, epochs=10, updates_per_epoch=100)
    rates = {}
    for update in (0, 230, 1000):
        scheduler.step_update(num_updates=update)
        rates[update] = optimizer.param_groups[-1]["lr"] / FAST.lr
    assert rates == pytest.approx({0: 0.2, 230: 1.0, 1000: 0.07}, abs=1e-6)


@pytest.mark.lowest  # timm's scheduler, optimizer groups and Lookahead at the lowest versions too
def test_lookahead_moves_the_slow_weights_on_schedule_and_ends_on_them():
    assert FAST.lookahead
    model = nn.Linear(3, 1, bias=False)
    optimizer = create_optimizer(model, FAST)
    set_lookahead_alpha(optimizer, 0, 100)
    assert optimizer.param_groups[0]["lookahead_alpha"] == 1.0  # early on the slow weights follow
    set_lookahead_alpha(optimizer, 100, 200)
    assert optimizer.param_groups[0]["lookahead_alpha"] == pytest.approx(1 - 0.95**5 / 8)
    x = torch.randn(16, 3)
    slow_after_first_sync = None
    for step in range(1, 8):
        set_lookahead_alpha(optimizer, step, 100)
        model.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
        if step == 5:  # the fifth step syncs: fast and slow agree
            slow_after_first_sync = model.weight.detach().clone()
    assert not torch.equal(model.weight, slow_after_first_sync)  # two fast steps since
    finish_lookahead(optimizer)
    slow = optimizer.state_dict()["state"][0]["lookahead_slow_buff"]
    assert torch.equal(model.weight, slow)


def test_the_translate_crop_reflects_and_stays_within_its_pixels():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8) % 200 + 20  # no zeros anywhere
    shifted = pad_crop_flip(images, torch.tensor([0, 4]), torch.tensor([4, 0]), torch.tensor([False, True]), 2,
                            "reflect")  # fmt: skip
    assert shifted.dtype == torch.uint8 and shifted.shape == images.shape
    assert (shifted > 0).all()  # reflected borders, not zeros
    assert torch.equal(shifted[0, :, 2:, :6], images[0, :, :6, 2:])  # moved down 2 and left 2
    zero_padded = pad_crop_flip(images, torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([False, False]), 2)
    assert (zero_padded[:, :, :2] == 0).all()
    assert Augmentation(translate=2).crop_padding(32) == (2, "reflect")
    assert Augmentation().crop_padding(32) == (4, "constant")


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), epoch=st.integers(0, 6))
def test_the_alternating_flip_shows_each_image_both_ways_every_two_epochs(seed, epoch):
    # asymmetric images: a flip is visible as the left and right halves swapping
    images = torch.zeros(20, 1, 4, 4, dtype=torch.uint8)
    images[..., :2] = 255
    data = ImageTensors(images, torch.zeros(20, dtype=torch.int64), ("a",))

    def flipped(epoch: int) -> torch.Tensor:
        order = torch.arange(20)
        x, _ = next(batches(data, 20, (0.0,), (1.0,), train=True, pad=0, seed=seed, epoch=epoch,
                            channels_last=False, indices=order, alternate_flip=True))  # fmt: skip
        return x[:, 0, 0, 0] == 0  # the left edge is dark when flipped

    this, following = flipped(epoch), flipped(epoch + 1)
    assert torch.equal(this, ~following)
    assert torch.equal(this, flipped(epoch + 2))


class _Recorder(nn.Module):
    """Logits that name the view: the mean of its first column tells shifts apart, of its last column mirrors."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.views.append(x.clone())
        return torch.stack([x[:, 0, 0, 0], x[:, 0, 0, -1]], 1)


def test_flip_and_translate_tta_average_six_views_with_airbenchs_weights():
    images = torch.arange(16.0).view(1, 1, 4, 4)
    model = _Recorder()
    evaluate(model, [(images, torch.zeros(1, dtype=torch.int64))], flip_tta=True, translate_tta=1,
             autocast_dtype=None)  # fmt: skip
    assert len(model.views) == 6
    padded = nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :4, :4], padded[..., 2:, 2:]
    expected = [images, images.flip(-1), up_left, up_left.flip(-1), down_right, down_right.flip(-1)]
    assert all(torch.equal(a, b) for a, b in zip(model.views, expected, strict=True))
    model.views.clear()
    evaluate(model, [(images, torch.zeros(1, dtype=torch.int64))], flip_tta=False, translate_tta=0,
             autocast_dtype=None)  # fmt: skip
    assert len(model.views) == 1


def test_identity_init_passes_the_input_through_the_first_channels():
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    identity_init_(conv.weight)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(conv(x)[:, :8], x)


def test_the_fast_network_is_inception_modules_and_trains_with_its_recipe():
    model = inceptionzoo.create_model("inception_fast_cifar")
    assert recipe_for(model).name == "cifar_fast"
    group = model.features[2]
    assert [name for name, _ in group.module_b.named_children()] == ["branch1x1", "branch3x3", "branch5x5"]
    plain = inceptionzoo.create_model("inception_fast_cifar", branch_fractions=(0, 1, 0))
    assert isinstance(plain.features[2].module_b.conv, nn.Conv2d)  # one branch: airbench's plain convolution
    with pytest.raises(ValueError, match="summing to 1"):
        inceptionzoo.create_model("inception_fast_cifar", branch_fractions=(0.5, 0.6, 0))


def kernels(module: nn.Module) -> list[tuple[int, int]]:
    return [m.kernel_size for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_the_fast_network_takes_factorized_3x3s_and_1x1_reductions():
    """Two Inception design choices as config switches, for ablations: every 3x3 as 1x3 then 3x1 (figure 6 at
    n = 3), a 1x1 reduction before each 3x3 branch (GoogLeNet's figure 2b); each makes the network cheaper."""
    from inceptionzoo.complexity import count_macs

    base = inceptionzoo.create_model("inception_fast_cifar", widths=(16, 32, 32))
    factorized = inceptionzoo.create_model("inception_fast_cifar", widths=(16, 32, 32), factorize_3x3=True)
    reduced = inceptionzoo.create_model("inception_fast_cifar", widths=(16, 32, 32), reduction=0.5)
    module = factorized.features[2].module_b
    assert kernels(module.branch3x3) == [(1, 3), (3, 1)] and kernels(module.branch5x5) == [(1, 3), (3, 1)] * 2
    assert kernels(reduced.features[2].module_b.branch3x3) == [(1, 1), (3, 3)]
    assert kernels(reduced.features[2].module_b.branch5x5) == [(1, 1), (3, 3), (3, 3)]
    assert reduced.features[2].module_b.branch3x3[0].conv.out_channels == 8  # half of the branch's 16
    assert count_macs(factorized) < count_macs(base) and count_macs(reduced) < count_macs(base)
    for model in (factorized, reduced):
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # the defaults build the network as before: the same layers, the same state-dict keys
    assert kernels(base.features[2].module_b) == [(1, 1), (3, 3), (3, 3), (3, 3)]
    with pytest.raises(ValueError, match="reduction is a share"):
        inceptionzoo.create_model("inception_fast_cifar", reduction=1.5)


def test_the_norm_after_the_pool_folds_only_where_its_scales_are_positive():
    from inceptionzoo.deploy.passes import fold_batchnorm

    model = inceptionzoo.create_model("inception_fast_cifar", widths=(16, 32, 32))
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32))
    model.eval()
    norms = [group.bn for group in model.features[2:]]
    with torch.no_grad():
        norms[0].weight.uniform_(0.5, 2.0)
        norms[1].weight[3] = -0.5  # a max pool does not commute with a negative scale: this one must stay
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model)
        got = folded(x)
    assert isinstance(folded.features[2].bn, nn.Identity) and isinstance(folded.features[4].bn, nn.Identity)
    assert isinstance(folded.features[3].bn, nn.BatchNorm2d)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


MUON = replace(FAST, name="cifar_fast_muon_test", muon_lr=0.24)
NEEDS_MUON = pytest.mark.skipif(not hasattr(timm.optim, "Muon"), reason="timm before 1.0.21 has no Muon")


def muon_model() -> nn.Module:
    model = inceptionzoo.create_model("inception_fast_cifar", widths=(16, 16, 16))
    freeze_norm_scales(model)
    model.features[0].weight.requires_grad_(False)  # the whitened stem, as a run freezes it
    return model


@NEEDS_MUON
def test_muon_takes_the_trainable_filters_and_the_recipe_optimizer_the_rest():
    model = muon_model()
    optimizer = create_optimizer(model, MUON)
    split = optimizer._base_optimizer  # under timm's Lookahead
    assert isinstance(split, SplitOptimizer)
    rest, filters = split.optimizers
    in_filters = [p for group in filters.param_groups for p in group["params"]]
    in_rest = [p for group in rest.param_groups for p in group["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sorted(map(id, in_filters + in_rest)) == sorted(map(id, trainable))  # each trained once, by one
    assert {id(p) for p in in_filters} == {id(p) for p in trainable if p.ndim == 4}
    assert all(id(model.features[0].weight) != id(p) for p in in_filters)
    assert [group["lr"] for group in filters.param_groups] == [0.24]
    # the rest keeps the recipe's SGD, its norm biases at 64x
    assert {group.get("lr_scale", 1.0) for group in rest.param_groups} == {1.0, 64.0}
    assert len(optimizer.param_groups) == len(rest.param_groups) + len(filters.param_groups)


@NEEDS_MUON
def test_muon_normalizes_each_filter_before_its_step_and_resumes_exactly():
    torch.manual_seed(0)
    model = muon_model()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10

    def step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    tiny = create_optimizer(model, replace(MUON, muon_lr=1e-12, lr=1e-12))
    step(model, tiny)  # a step of nothing: what is left is the normalization
    filters = [p for p in model.parameters() if p.ndim == 4 and p.requires_grad]
    assert all(torch.allclose(p.norm(), torch.tensor(p.shape[0] ** 0.5)) for p in filters)

    optimizer = create_optimizer(model, MUON)
    for _ in range(3):
        step(model, optimizer)
    copy = muon_model()
    copy.load_state_dict(model.state_dict())
    restored = create_optimizer(copy, MUON)
    saved = io.BytesIO()  # through bytes, as a checkpoint: a state dict holds the optimizer's own tensors
    torch.save(optimizer.state_dict(), saved)
    saved.seek(0)
    restored.load_state_dict(torch.load(saved))
    for _ in range(3):  # past a lookahead sync (every 5 steps), which reads the restored slow weights
        step(model, optimizer)
        step(copy, restored)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), copy.state_dict().values(), strict=True))


def test_muon_on_a_timm_without_it_says_which_timm_it_needs(monkeypatch):
    import timm.optim

    monkeypatch.delattr(timm.optim, "Muon", raising=False)
    with pytest.raises(ImportError, match=r"timm's Muon, which timm .* lacks: pip install 'timm>=1.0.21'"):
        create_optimizer(muon_model(), MUON)


def branch_pair(kernels_and_widths, stride, norm, act, in_chs=5):
    """The same single-convolution branches as ``ParallelBranches`` and as ``FusedConvBranches`` (equal weights)."""
    import copy

    from inceptionzoo.layers import ConvNormAct, FusedConvBranches, ParallelBranches

    torch.manual_seed(0)
    branches = {
        f"branch{i}": ConvNormAct(in_chs, width, k, stride=stride, padding=k // 2, norm_layer=norm, act_layer=act)
        for i, (k, width) in enumerate(kernels_and_widths)
    }
    for branch in branches.values():  # norms away from their initial state, so a mixed-up channel shows
        if isinstance(branch.bn, nn.BatchNorm2d):
            branch.bn.weight.data.uniform_(0.5, 1.5), branch.bn.bias.data.normal_()
            branch.bn.running_mean.normal_(), branch.bn.running_var.uniform_(0.5, 2)
    plain = ParallelBranches(**branches)
    return plain, FusedConvBranches(**copy.deepcopy(branches))


@settings(max_examples=25, deadline=None)
@given(
    kernels_and_widths=st.lists(st.tuples(st.sampled_from([1, 3, 5]), st.integers(1, 6)), min_size=1, max_size=3),
    stride=st.sampled_from([1, 2]),
    norm=st.sampled_from([nn.BatchNorm2d, None]),
    act=st.sampled_from([nn.GELU, nn.ReLU, None]),
    size=st.integers(3, 9),
)
def test_fused_branches_compute_what_the_branches_compute(kernels_and_widths, stride, norm, act, size):
    """One convolution over the zero-padded, stacked filters, one norm and one activation give the branches' outputs,
    gradients and running statistics, in training and in evaluation, with the same state-dict keys."""
    plain, fused = branch_pair(kernels_and_widths, stride, norm, act)
    assert fused.runs_as_one_convolution()
    assert list(fused.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 5, size, size)
    inputs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    outputs = [module(i) for module, i in zip((plain, fused), inputs, strict=True)]
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)
    for output in outputs:
        (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum().backward()
    scale = max(1.0, inputs[0].grad.abs().max().item())
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad, atol=2e-5 * scale, rtol=1e-4)
    for (name, p), q in zip(plain.named_parameters(), fused.parameters(), strict=True):
        scale = max(1.0, p.grad.abs().max().item())  # float32 sums of other orders differ by about 1e-6 of the largest
        torch.testing.assert_close(q.grad, p.grad, atol=2e-5 * scale, rtol=1e-4, msg=name)
    for (name, p), q in zip(plain.state_dict().items(), fused.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-6, msg=name)
    plain.eval(), fused.eval()
    torch.testing.assert_close(fused(x), plain(x), atol=1e-5, rtol=1e-5)


def test_fused_branches_run_one_by_one_where_they_cannot_run_as_one():
    """Unlike activations or paddings, a norm other than BatchNorm2d (SyncBatchNorm under torchrun's --sync-bn) and
    fx's tracing each keep the branches apart; the output does not change."""
    from inceptionzoo.layers import ConvNormAct, FusedConvBranches

    _, fused = branch_pair([(1, 3), (3, 4)], 1, nn.BatchNorm2d, nn.ReLU)
    assert fused.runs_as_one_convolution()
    fused.branch1.act = nn.GELU()
    assert not fused.runs_as_one_convolution()
    fused.eval()
    assert fused(torch.randn(2, 5, 6, 6)).shape == (2, 7, 6, 6)
    _, fused = branch_pair([(1, 3), (3, 4)], 1, nn.BatchNorm2d, nn.ReLU)
    assert not nn.SyncBatchNorm.convert_sync_batchnorm(fused).runs_as_one_convolution()
    off_centre = FusedConvBranches(a=ConvNormAct(5, 3, 1), b=ConvNormAct(5, 4, 3, padding=0))
    assert not off_centre.runs_as_one_convolution()
    _, fused = branch_pair([(1, 3), (3, 4)], 1, nn.BatchNorm2d, nn.ReLU)
    graph = torch.fx.symbolic_trace(fused.eval())
    assert [n.target for n in graph.graph.nodes if n.op == "call_module" and n.target.endswith("conv")] == [
        "branch0.conv", "branch1.conv",
    ]  # fmt: skip
    x = torch.randn(2, 5, 6, 6)
    torch.testing.assert_close(graph(x), fused(x))


def test_the_fast_network_runs_its_1x1_and_3x3_branches_as_one_convolution():
    """With no 3x3-3x3 branch every module's branches are single convolutions and run as one; the weights and the
    function are those of the network built with ``fuse_branches=False``."""
    from inceptionzoo.layers import FusedConvBranches

    kwargs = dict(widths=(16, 32, 32), branch_fractions=(0.125, 0.875, 0))
    fused = inceptionzoo.create_model("inception_fast_cifar", **kwargs)
    plain = inceptionzoo.create_model("inception_fast_cifar", fuse_branches=False, **kwargs)
    assert sum(isinstance(m, FusedConvBranches) for m in fused.modules()) == 6
    assert not any(isinstance(m, FusedConvBranches) for m in plain.modules())
    default = inceptionzoo.create_model("inception_fast_cifar")  # its 3x3-3x3 branch is two convolutions deep
    assert not any(isinstance(m, FusedConvBranches) for m in default.modules())
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(fused(x), plain(x), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.state_dict(), plain.state_dict())
    from inceptionzoo.complexity import count_macs

    assert count_macs(fused) == count_macs(plain)  # the network's multiply-adds, not the padded filters' zeros
