"""The papers' recipes are data, built with timm's and torch's factories."""

import pytest
import torch
from timm.optim import RMSpropTF
from timm.scheduler import CosineLRScheduler, StepLRScheduler

import inceptionzoo
from inceptionzoo.train import RECIPES, create_ema, create_loss, create_optimizer, create_scheduler, recipe_for


def rates_at(scheduler, optimizer, updates: tuple[int, ...]) -> dict[int, float]:
    """The learning rate after ``scheduler.step_update`` at each of ``updates``."""
    rates = {}
    for update in updates:
        scheduler.step_update(num_updates=update)
        rates[update] = optimizer.param_groups[0]["lr"]
    return rates


@pytest.mark.parametrize(
    ("name", "recipe"),
    [
        ("inception_v1", "googlenet"),
        ("inception_v1_bn", "momentum_sgd"),
        ("bn_inception", "momentum_sgd"),
        ("inception_v2", "momentum_sgd"),
        ("inception_v2_rmsprop", "rmsprop"),
        ("inception_v2_ls", "rmsprop_label_smoothing"),
        ("inception_v3", "rmsprop_label_smoothing"),
        ("inception_v3_cifar", "cifar"),
        ("inception_v1_cifar", "cifar"),
    ],
)
def test_each_row_carries_its_recipe(name, recipe):
    assert recipe_for(inceptionzoo.create_model(name)).name == recipe


def test_inception_v3_recipe_is_the_papers():
    model = inceptionzoo.create_model("inception_v3_cifar", width_multiplier=0.125)
    recipe = recipe_for(inceptionzoo.create_model("inception_v3"))
    optimizer = create_optimizer(model, recipe)
    assert isinstance(optimizer, RMSpropTF)  # epsilon inside the square root, as in TensorFlow
    assert optimizer.defaults["eps"] == 1.0 and optimizer.defaults["alpha"] == 0.9 and optimizer.defaults["lr"] == 0.045
    # no weight decay on BatchNorm and biases
    assert any(group["weight_decay"] == 0 for group in optimizer.param_groups)
    scheduler = create_scheduler(optimizer, recipe)  # timm's step schedule: 0.94 every two epochs
    assert isinstance(scheduler, StepLRScheduler) and scheduler.t_in_epochs
    assert (scheduler.decay_t, scheduler.decay_rate) == (2, 0.94)
    assert create_loss(recipe).label_smoothing == 0.1
    assert recipe.clip_grad == 2.0 and recipe.aux_weight == 0.4
    ema = create_ema(model, recipe)
    assert ema is not None and ema.decay == 0.9999


def test_per_step_schedule_keeps_the_papers_epoch_boundaries():
    model = inceptionzoo.create_model("inception_v3_cifar", width_multiplier=0.125)
    recipe = recipe_for(inceptionzoo.create_model("inception_v3"))
    optimizer = create_optimizer(model, recipe)
    scheduler = create_scheduler(optimizer, recipe, updates_per_epoch=10)
    rates = rates_at(scheduler, optimizer, (0, 19, 20, 39, 40, 60))
    # 0.045, times 0.94 after every 2 epochs (20 updates), not before
    expected = {0: 0.045, 19: 0.045, 20: 0.045 * 0.94, 39: 0.045 * 0.94, 40: 0.045 * 0.94**2, 60: 0.045 * 0.94**3}
    assert rates == pytest.approx(expected)


def test_cifar_recipe_warms_up_for_one_epoch_then_follows_a_cosine_per_step():
    """What the recipe asks of timm's cosine schedule, counted in steps; the cosine itself is timm's to test."""
    recipe = RECIPES["cifar"]
    optimizer = create_optimizer(inceptionzoo.create_model("inception_v1_cifar"), recipe)
    scheduler = create_scheduler(optimizer, recipe, epochs=10, updates_per_epoch=100)
    assert isinstance(scheduler, CosineLRScheduler) and not scheduler.t_in_epochs
    assert (scheduler.t_initial, scheduler.warmup_t) == (1000, 100)  # 10 epochs, the first one warming up
    assert scheduler.warmup_lr_init == pytest.approx(recipe.lr * 0.01)
    scheduler.step_update(num_updates=0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(recipe.lr * 0.01)


def test_googlenet_recipe():
    recipe = RECIPES["googlenet"]
    model = inceptionzoo.create_model("inception_v1_cifar")
    optimizer = create_optimizer(model, recipe)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    scheduler = create_scheduler(optimizer, recipe)
    scheduler.step(8)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(recipe.lr * 0.96)  # down 4% every 8 epochs
    assert recipe.aux_weight == 0.3 and create_loss(recipe).label_smoothing == 0.0


def test_overrides_and_a_training_step_with_aux_losses():
    model = inceptionzoo.create_model("inception_v1_cifar", aux_logits=True).train()
    recipe = recipe_for(model, lr=0.05, epochs=3)
    assert recipe.lr == 0.05 and recipe.epochs == 3 and RECIPES["cifar"].lr == 0.2
    optimizer = create_optimizer(model, recipe)
    loss_fn = create_loss(recipe)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(x)
    loss = loss_fn(out.logits, y) + recipe.aux_weight * sum(loss_fn(aux, y) for aux in out[1:])
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_decay_epochs_overrides_the_step_interval_and_a_fraction_decays_at_its_step():
    from inceptionzoo.train.config import TrainConfig, resolve_recipe

    model = torch.nn.Linear(4, 2)
    config = TrainConfig(recipe="rmsprop_label_smoothing", decay_epochs=0.1, batch_size=32)
    recipe = resolve_recipe(config, model, world_size=1)
    assert recipe.decay_epochs == 0.1 and recipe.decay_rate == 0.94
    assert resolve_recipe(TrainConfig(recipe="googlenet"), model, 1).decay_epochs == 8.0  # default: the recipe's
    optimizer = create_optimizer(model, recipe)
    # 30 steps an epoch: a decay every 3 steps
    scheduler = create_scheduler(optimizer, recipe, updates_per_epoch=30)
    rates = rates_at(scheduler, optimizer, (0, 2, 3, 5, 6, 30))
    lr = recipe.lr
    assert rates == pytest.approx({0: lr, 2: lr, 3: lr * 0.94, 5: lr * 0.94, 6: lr * 0.94**2, 30: lr * 0.94**10})
    # timm's 1.1 x 50 steps is 55.00000000000001 in floating point: still a decay at step 55, not 56
    recipe = resolve_recipe(TrainConfig(recipe="momentum_sgd", decay_epochs=1.1), model, world_size=1)
    scheduler = create_scheduler(create_optimizer(model, recipe), recipe, updates_per_epoch=50)
    assert scheduler._get_lr(54)[0] == recipe.lr and scheduler._get_lr(55)[0] == pytest.approx(recipe.lr * 0.94)
    # an interval that is no whole number of steps decays at the first step after each multiple (2.5 steps: 3, 5, 8)
    recipe = resolve_recipe(TrainConfig(recipe="momentum_sgd", decay_epochs=0.25), model, world_size=1)
    scheduler = create_scheduler(create_optimizer(model, recipe), recipe, updates_per_epoch=10)
    decays = [int(scheduler._get_lr(t)[0] < scheduler._get_lr(t - 1)[0]) for t in range(1, 9)]
    assert decays == [0, 0, 1, 0, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="positive"):
        resolve_recipe(TrainConfig(recipe="googlenet", decay_epochs=0), model, 1)
    with pytest.raises(ValueError, match="cifar recipe's schedule is cosine.*momentum_sgd"):
        resolve_recipe(TrainConfig(recipe="cifar", decay_epochs=2), model, 1)
