"""One epoch of training and evaluation on a tiny, learnable problem."""

import torch

import inceptionzoo
from inceptionzoo.train import create_ema, create_loss, create_optimizer, recipe_for
from inceptionzoo.train.data import ImageTensors, batches
from inceptionzoo.train.engine import evaluate, train_one_epoch

MEAN, STD = (0.3, 0.3, 0.3), (0.3, 0.3, 0.3)


def tiny_dataset(count: int = 64) -> ImageTensors:
    """Two classes a network separates quickly and flips keep: bright top half versus bright bottom half."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 60, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count) % 2
    images[labels == 0, :, :16, :] += 150
    images[labels == 1, :, 16:, :] += 150
    return ImageTensors(images, labels, ("top", "bottom"))


def test_training_reduces_the_loss_with_aux_heads_and_ema():
    torch.manual_seed(0)
    model = inceptionzoo.create_model("inception_v1_cifar", num_classes=2, aux_logits=True, width_multiplier=0.125)
    recipe = recipe_for(model, lr=0.05, clip_grad=1.0, ema_decay=0.9)
    optimizer, loss_fn, ema = create_optimizer(model, recipe), create_loss(recipe), create_ema(model, recipe)
    data = tiny_dataset()
    history = [
        train_one_epoch(model, batches(data, 16, MEAN, STD, train=True, epoch=epoch), optimizer, loss_fn, recipe, ema)
        for epoch in range(5)
    ]
    assert all(stats.images == 64 and stats.top5 == 100.0 for stats in history)  # two classes: top-5 always right
    assert history[-1].loss < history[0].loss
    assert history[-1].top1 >= 90.0
    assert any(
        not torch.equal(a, b)
        for a, b in zip(ema.module.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_evaluate_counts_like_a_hand_written_loop():
    model = inceptionzoo.create_model("inception_v1_cifar", num_classes=2, width_multiplier=0.125).eval()
    data = tiny_dataset(20)
    stats = evaluate(model, batches(data, 8, MEAN, STD), autocast_dtype=None)
    x, y = next(batches(data, 20, MEAN, STD))
    with torch.no_grad():
        logits = model(x)
    assert stats.images == 20
    assert abs(stats.top1 - 100 * (logits.argmax(1) == y).float().mean().item()) < 1e-6
    assert abs(stats.loss - torch.nn.functional.cross_entropy(logits, y).item()) < 1e-5


def test_flip_tta_averages_the_mirrored_logits():
    model = inceptionzoo.create_model("inception_v3_cifar", num_classes=2).eval()
    data = tiny_dataset(8)
    plain = evaluate(model, batches(data, 8, (0.3,) * 3, (0.3,) * 3), autocast_dtype=None)
    tta = evaluate(model, batches(data, 8, (0.3,) * 3, (0.3,) * 3), flip_tta=True, autocast_dtype=None)
    x, y = next(batches(data, 8, (0.3,) * 3, (0.3,) * 3))
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy((model(x) + model(x.flip(-1))) / 2, y)
    assert abs(tta.loss - expected.item()) < 1e-5
    assert plain.images == tta.images == 8
